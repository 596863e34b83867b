// Package statestoretest runs contrib's real file_storage extension for
// tests of components that persist state.
package statestoretest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"
)

// ID is the file_storage extension's ID in the host FileStorage returns.
var ID = component.MustNewID("file_storage")

type host struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.exts }

// FileStorage starts a real file_storage extension on dir, as a collector
// would, and returns a host that has it as ID. It is shut down with t.
func FileStorage(t testing.TB, dir string) component.Host {
	t.Helper()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = dir
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { _ = ext.Shutdown(context.Background()) })
	return host{componenttest.NewNopHost(), map[component.ID]component.Component{ID: ext}}
}

// Damage truncates every store file in dir to 10 bytes (a part of its first page header), as a kill
// mid-write or a full disk leaves it.
func Damage(t testing.TB, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		require.NoError(t, os.Truncate(f, 10))
	}
}
