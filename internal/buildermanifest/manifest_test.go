package buildermanifest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadTakesTheDistSection(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "builder-config.yaml"), []byte("dist:\n  name: otelcol-x\n  description: X\n  version: 1.2.3\nreceivers: []\n"), 0o644))
	d, err := Read(dir)
	require.NoError(t, err)
	assert.Equal(t, Dist{Name: "otelcol-x", Description: "X", Version: "1.2.3"}, d)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "builder-config.yaml"), []byte("dist:\n  name: otelcol-x\n"), 0o644))
	_, err = Read(dir)
	assert.ErrorContains(t, err, "no dist.version")
}
