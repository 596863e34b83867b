package structure

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubestitch/kubestitch/localcluster"
)

// Most lines a Go file may have: past them, a file does more than one
// thing and is split by concern (a test file by subject).
const (
	maxLines     = 400
	maxTestLines = 600
)

// oversized are files still over the limit, each being split. Empty once
// they are.
var oversized = []string{}

// generated is the first line of a generated Go file (go help generate).
var generated = regexp.MustCompile(`^// Code generated .* DO NOT EDIT\.$`)

// TestNoGoFileTooLong: every Go file of the repository (tracked by git,
// or new and not ignored), in every module, has at most 400 lines, a
// _test.go file 600; generated files are left out.
func TestNoGoFileTooLong(t *testing.T) {
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "*.go")
	cmd.Dir = root
	out, err := cmd.Output()
	require.NoError(t, err)
	var checked int
	var over []string
	for _, path := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(root, path))
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		require.NoError(t, err)
		checked++
		first, _, _ := bytes.Cut(b, []byte("\n"))
		if generated.Match(bytes.TrimSuffix(first, []byte("\r"))) {
			continue
		}
		limit := maxLines
		if strings.HasSuffix(path, "_test.go") {
			limit = maxTestLines
		}
		if n := lines(b); n > limit && !slices.Contains(oversized, path) {
			over = append(over, fmt.Sprintf("%s: %d lines, over %d", path, n, limit))
		} else if n <= limit && slices.Contains(oversized, path) {
			t.Logf("%s has %d lines now: take it off the oversized list", path, n)
		}
	}
	assert.Greater(t, checked, 100, "the repository's Go files were listed")
	if len(over) > 0 {
		t.Errorf("split these files by concern (a test file by subject):\n%s", strings.Join(over, "\n"))
	}
}

// lines counts lines as wc -l does, a last line without its newline
// included.
func lines(b []byte) int {
	n := bytes.Count(b, []byte("\n"))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}
