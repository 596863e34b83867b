package release

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/kubestitch/kubestitch/localcluster"
)

// TestReleaseWorkflowRunsTheTestedTargets: the GitHub workflow cannot run
// here, so it must do nothing but what is tested here: `make release`
// (TestMakeRelease), `make push` of the layout it wrote
// (TestMakePushThenPullByDigest), and publish the files TestMakeRelease
// checks; it runs on version tags, with the permissions keyless signing
// needs and no more.
func TestReleaseWorkflowRunsTheTestedTargets(t *testing.T) {
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, ".github", "workflows", "release.yaml"))
	require.NoError(t, err)
	var wf struct {
		On struct {
			Push struct {
				Tags []string `yaml:"tags"`
			} `yaml:"push"`
		} `yaml:"on"`
		Permissions map[string]string `yaml:"permissions"`
		Jobs        map[string]struct {
			Permissions map[string]string `yaml:"permissions"`
			Steps       []struct {
				Uses string `yaml:"uses"`
				Run  string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	// YAML 1.2 (go.yaml.in/yaml/v3), as GitHub reads it: `on` is a key, not true.
	require.NoError(t, yaml.Unmarshal(b, &wf))
	assert.Equal(t, []string{"v[0-9]*"}, wf.On.Push.Tags)
	assert.Equal(t, map[string]string{"contents": "read"}, wf.Permissions, "read-only unless a job says")
	job, ok := wf.Jobs["release"]
	require.True(t, ok)
	assert.Equal(t, map[string]string{"contents": "write", "packages": "write", "id-token": "write"}, job.Permissions)
	var run strings.Builder
	for _, s := range job.Steps {
		run.WriteString(s.Run + "\n")
	}
	script := run.String()
	for _, want := range []string{
		"make -s image-name",                   // the tag is the version
		"make release\n",                       // TestMakeRelease
		"make -s push LAYOUT=dist/release/oci", // TestMakePushThenPullByDigest
		"cosign sign --yes --recursive",
		"_linux_${arch}.sbom.cdx.json", // the image SBOMs make release writes
		"$1 == p {print $2}",           // each attested to its platform's manifest, as make push prints it
		"_checksums.txt",
		"*.tar.gz *.sbom.cdx.json",
	} {
		assert.Contains(t, script, want)
	}
	assert.NotContains(t, script, "docker build", "the image is make release's, not an engine's")
}
