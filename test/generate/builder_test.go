// Package generate checks that generated code is what its generators make
// of the committed inputs: `make generate` when a test here fails.
package generate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGeneratedCodeIsCurrent runs the builder (ocb, pinned as a Go tool) on
// builder-config.yaml into a temporary directory and compares what it
// writes with the committed files: run `make generate` when this fails.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	root := repoRoot(t)
	manifest, err := os.ReadFile(filepath.Join(root, "builder-config.yaml"))
	require.NoError(t, err)
	out := t.TempDir()
	cfg := strings.Replace(string(manifest), "output_path: ./distribution", "output_path: "+out, 1)
	require.NotEqual(t, string(manifest), cfg, "builder-config.yaml must set output_path: ./distribution")
	cfgPath := filepath.Join(out, "builder-config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))

	cmd := exec.Command("go", "tool", "builder", "--config", cfgPath, "--skip-get-modules", "--skip-compilation")
	cmd.Dir = root
	// The builder makes a default output directory under TMPDIR even when
	// the manifest names another: keep it in the test's temp dir.
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	fmtOut, err := exec.Command("gofmt", "-l", "-w", out).CombinedOutput()
	require.NoError(t, err, "%s", fmtOut)

	for _, f := range []string{"main.go", "main_others.go", "main_windows.go", "components.go"} {
		want, err := os.ReadFile(filepath.Join(out, f))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(root, "distribution", f))
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got), "distribution/%s is not what builder-config.yaml generates: run make generate", f)
	}
}
