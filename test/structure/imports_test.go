// Package structure checks rules of the repository's layout that no
// compiler enforces.
package structure

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubestitch/kubestitch/localcluster"
)

const module = "github.com/kubestitch/kubestitch"

// TestNothingOutsideTestImportsTest: test/ holds what only tests use. The
// distribution, its components, the commands and the local test bed
// (localcluster, which make demo runs) never import it; only _test.go
// files may (go list's Imports leaves those out).
func TestNothingOutsideTestImportsTest(t *testing.T) {
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	require.NoError(t, err)
	var checked int
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := fields[0]
		if strings.HasPrefix(pkg, module+"/test/") {
			continue
		}
		checked++
		for _, imp := range fields[1:] {
			assert.False(t, strings.HasPrefix(imp, module+"/test/"), "%s imports %s: product code never imports test/", pkg, imp)
		}
	}
	assert.Greater(t, checked, 10, "the product's packages were listed")
}
