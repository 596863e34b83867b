package k8sstitchprocessor

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/kubestitch/kubestitch/processor/k8sstitchprocessor/internal/metadata"
)

// TestDefaultConfigAsksForTheFragmentKey: nothing but a choice of trust
// is missing from the defaults, and the error says what to set.
func TestDefaultConfigAsksForTheFragmentKey(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.ErrorContains(t, cfg.Validate(), "fragment_key_file is required")
	cfg.FragmentKeyFile = "/etc/kubestitch/fragment-key/key"
	require.NoError(t, cfg.Validate())
}

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, "custom").String())
	require.NoError(t, err)
	require.NoError(t, sub.Unmarshal(cfg))
	require.NoError(t, confmap.Validate(cfg))
	storage := component.MustNewID("file_storage")
	assert.Equal(t, &Config{
		Wait: 2 * time.Second, RootWait: time.Minute, OperationTimeout: 5 * time.Minute, MaxObjects: 5000,
		MaxWaitingSpans: 1000, MaxWaitingBytes: 1 << 20, ClockTolerance: 500 * time.Millisecond, Storage: &storage,
		FragmentKeyFile: "/etc/kubestitch/fragment-key/key",
		JoinServices:    []string{"apiserver", "kubelet", "containerd", "my-operator"},
	}, cfg)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name        string
		mutate      func(*Config)
		expectedErr string
	}{
		{"wait zero", func(c *Config) { c.Wait = 0 }, "wait must be positive"},
		{"root_wait negative", func(c *Config) { c.RootWait = -time.Second }, "root_wait must be at least 0"},
		{"timeout below wait", func(c *Config) { c.OperationTimeout = time.Second }, "operation_timeout must be longer than wait"},
		{"no objects", func(c *Config) { c.MaxObjects = 0 }, "max_objects must be positive"},
		{"too many objects", func(c *Config) { c.MaxObjects = 1<<29 + 1 }, "max_objects must be at most 536870912"},
		{"no waiting spans", func(c *Config) { c.MaxWaitingSpans = -1 }, "max_waiting_spans must be positive"},
		{"no waiting bytes", func(c *Config) { c.MaxWaitingBytes = 0 }, "max_waiting_bytes must be positive"},
		{"tolerance too big", func(c *Config) { c.ClockTolerance = time.Minute }, "clock_tolerance must be at least 0 and shorter than wait"},
		{"empty join service", func(c *Config) { c.JoinServices = append(c.JoinServices, "") }, "join_services[9] is empty: name a service.name"},
		{"key and no key", func(c *Config) { c.AcceptUnsignedFragments = true }, "fragment_key_file and accept_unsigned_fragments exclude each other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.FragmentKeyFile = "key"
			tt.mutate(cfg)
			assert.EqualError(t, cfg.Validate(), tt.expectedErr)
		})
	}
}
