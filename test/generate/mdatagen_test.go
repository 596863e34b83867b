package generate

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubestitch/kubestitch/localcluster"
)

// components have a metadata.yaml that mdatagen generates from.
var components = []string{
	"processor/k8sstitchprocessor",
	"processor/k8snamespaceprocessor",
	"receiver/k8swatchreceiver",
	"receiver/k8sadmissionreceiver",
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	return root
}

// TestTelemetryIsGeneratedFromMetadata runs mdatagen (pinned in tools/)
// on each component's metadata.yaml, in a copy of the repository, and
// compares every file it writes with the committed one: a metric, unit,
// description or type in metadata.yaml that the code does not have, or
// the other way round, fails here.
func TestTelemetryIsGeneratedFromMetadata(t *testing.T) {
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "mdatagen")
	build := exec.Command("go", "build", "-o", bin, "go.opentelemetry.io/collector/cmd/mdatagen")
	build.Dir = filepath.Join(root, "tools")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building mdatagen: %s", out)

	// mdatagen resolves the component's package in its module: the copy
	// has the module's files, not its build output.
	tmp := t.TempDir()
	ls := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard")
	ls.Dir = root
	files, err := ls.Output()
	require.NoError(t, err)
	for _, f := range strings.Split(strings.TrimSpace(string(files)), "\n") {
		if strings.HasPrefix(f, "tools/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted, not yet committed
		}
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(tmp, f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(tmp, f), b, 0o644))
	}

	for _, c := range components {
		dir := filepath.Join(tmp, c)
		// What mdatagen writes is removed first, so a file it no longer
		// writes shows up as missing from its output.
		committed := generatedFiles(t, dir)
		require.NotEmpty(t, committed, "%s has generated files", c)
		for _, f := range committed {
			require.NoError(t, os.Remove(filepath.Join(dir, f)))
		}
		gen := exec.Command(bin, "metadata.yaml")
		gen.Dir = dir
		out, err := gen.CombinedOutput()
		require.NoError(t, err, "mdatagen %s: %s", c, out)
		produced := generatedFiles(t, dir)
		assert.ElementsMatch(t, committed, produced, "%s: the generated files", c)
		for _, f := range produced {
			want, err := os.ReadFile(filepath.Join(dir, f))
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(root, c, f))
			require.NoError(t, err)
			if string(want) != string(got) {
				t.Errorf("%s/%s is not what mdatagen makes of metadata.yaml (first difference at line %d): run make generate", c, f, firstDiffLine(string(want), string(got)))
			}
		}
	}
}

// generatedFiles lists, relative to a component's directory, the files
// mdatagen writes there.
func generatedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		base := filepath.Base(p)
		if strings.HasPrefix(base, "generated_") || base == "documentation.md" || strings.HasPrefix(rel, filepath.Join("internal", "metadatatest")) {
			out = append(out, rel)
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

func firstDiffLine(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}
