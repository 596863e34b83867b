package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// renamed lists Kubestitch's own component types: the lower_snake_case
// name and the name before it, still accepted as a deprecated alias.
var renamed = []struct {
	class, name, old string
}{
	{"receiver", "k8s_watch", "k8swatch"},
	{"receiver", "k8s_admission", "k8sadmission"},
	{"processor", "k8s_stitch", "k8sstitch"},
	{"processor", "k8s_namespace", "k8snamespace"},
}

// TestDeprecatedTypeAliases: in the distribution's factory maps the new
// name and the old one resolve to the same factory, whose type is the new
// name.
func TestDeprecatedTypeAliases(t *testing.T) {
	factories, err := components()
	require.NoError(t, err)
	for _, r := range renamed {
		t.Run(r.name, func(t *testing.T) {
			name, old := component.MustNewType(r.name), component.MustNewType(r.old)
			var byName, byOld component.Factory
			var okName, okOld bool
			switch r.class {
			case "receiver":
				byName, okName = factories.Receivers[name]
				byOld, okOld = factories.Receivers[old]
			case "processor":
				byName, okName = factories.Processors[name]
				byOld, okOld = factories.Processors[old]
			}
			require.True(t, okName, "%s %s not registered", r.class, r.name)
			require.True(t, okOld, "%s %s (deprecated alias) not registered", r.class, r.old)
			assert.Same(t, byName, byOld)
			assert.Equal(t, name, byName.Type())
		})
	}
}

// aliasConfig runs every renamed component with nothing outside the
// process: auth_type none (the informers retry in the background),
// unsigned fragments, the admission receiver's lifecycle test certificate.
const aliasConfig = `
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
  WATCH:
    auth_type: none
  ADMISSION:
    endpoint: 127.0.0.1:0
    tls:
      cert_file: ../receiver/k8sadmissionreceiver/testdata/lifecycle/tls.crt
      key_file: ../receiver/k8sadmissionreceiver/testdata/lifecycle/tls.key
      client_ca_file: ../receiver/k8sadmissionreceiver/testdata/lifecycle/tls.crt
processors:
  STITCH:
    accept_unsigned_fragments: true
  NAMESPACE:
exporters:
  debug:
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp, WATCH, ADMISSION]
      processors: [STITCH, NAMESPACE]
      exporters: [debug]
`

func writeAliasConfig(t *testing.T, old bool) string {
	t.Helper()
	cfg := aliasConfig
	for _, r := range renamed {
		placeholder := strings.ToUpper(strings.TrimPrefix(r.name, "k8s_"))
		typ := r.name
		if old {
			typ = r.old
		}
		cfg = strings.ReplaceAll(cfg, placeholder, typ)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	return path
}

// warnings collects the messages of the collector's warning logs.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) hook(e zapcore.Entry) error {
	if e.Level == zapcore.WarnLevel {
		w.mu.Lock()
		w.msgs = append(w.msgs, e.Message)
		w.mu.Unlock()
	}
	return nil
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

func newTestCollector(t *testing.T, configPath string, w *warnings) *otelcol.Collector {
	t.Helper()
	col, err := otelcol.NewCollector(otelcol.CollectorSettings{
		BuildInfo: component.NewDefaultBuildInfo(),
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				URIs:              []string{configPath},
				ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory()},
			},
		},
		LoggingOptions: []zap.Option{zap.Hooks(w.hook)},
	})
	require.NoError(t, err)
	return col
}

// TestOldAndNewNamesRun: a config naming the components by their new
// names and one naming them by the old ones both validate (what
// `otelcol-kubestitch validate` does) and run; only the old names log the
// collector's deprecation warning.
func TestOldAndNewNamesRun(t *testing.T) {
	for _, old := range []bool{false, true} {
		label := "new names"
		if old {
			label = "old names"
		}
		t.Run(label, func(t *testing.T) {
			path := writeAliasConfig(t, old)

			var dry warnings
			require.NoError(t, newTestCollector(t, path, &dry).DryRun(context.Background()))

			var w warnings
			col := newTestCollector(t, path, &w)
			done := make(chan error, 1)
			go func() { done <- col.Run(context.Background()) }()
			require.Eventually(t, func() bool {
				select {
				case err := <-done:
					done <- err
					return true
				default:
				}
				return col.GetState() == otelcol.StateRunning
			}, 30*time.Second, 20*time.Millisecond)
			require.Equal(t, otelcol.StateRunning, col.GetState(), "the collector did not start")
			col.Shutdown()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("the collector did not stop")
			}

			msgs := w.all()
			for _, r := range renamed {
				want := `"` + r.old + `" alias is deprecated; use "` + r.name + `" instead`
				if old {
					assert.Contains(t, msgs, want)
				} else {
					assert.NotContains(t, msgs, want)
				}
			}
		})
	}
}
