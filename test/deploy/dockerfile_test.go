package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubestitch/kubestitch/test/localcluster"
)

// TestDockerfileLint checks the image build (no engine here to build it):
// a distroless static base pinned by digest, a non-root numeric user, exec-form
// entrypoint, nothing fetched at build time.
func TestDockerfileLint(t *testing.T) {
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	require.NoError(t, err)
	var from, user, entrypoint string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			from = arg
		case "USER":
			user = arg
		case "ENTRYPOINT":
			entrypoint = arg
		case "ADD", "RUN":
			t.Errorf("%s: a static image copies the built binary, it neither downloads nor runs anything", line)
		}
	}
	assert.True(t, strings.HasPrefix(from, "gcr.io/distroless/static"), "distroless static base, got %q", from)
	assert.NotContains(t, from, ":latest")
	assert.Regexp(t, `@sha256:[0-9a-f]{64}$`, from, "the base pinned by digest")
	require.NotEmpty(t, user, "USER must be set")
	assert.NotContains(t, []string{"0", "root", "0:0"}, user)
	assert.True(t, strings.HasPrefix(entrypoint, "["), "exec-form ENTRYPOINT")
}
