package k8swatchreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/kubestitch/kubestitch/receiver/k8swatchreceiver/internal/metadata"
)

func TestDefaultConfigIsValid(t *testing.T) {
	require.NoError(t, createDefaultConfig().(*Config).Validate())
}

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, "agent").String())
	require.NoError(t, err)
	require.NoError(t, sub.Unmarshal(cfg))
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, ModeNode, cfg.Mode)
	assert.Equal(t, "node-1", cfg.NodeName)
	assert.Equal(t, []string{"Pod", "Event"}, cfg.Kinds)
	assert.Equal(t, []string{"team"}, cfg.AnnotationAllowList)
	assert.Equal(t, "file_storage", cfg.Storage.String())
	assert.Equal(t, 30*time.Second, cfg.QuietPeriod)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name        string
		mutate      func(*Config)
		expectedErr string
	}{
		{"auth", func(c *Config) { c.AuthType = "token" }, `auth_type must be one of serviceAccount, kubeConfig, none; got "token"`},
		{"mode", func(c *Config) { c.Mode = "both" }, `mode must be node or cluster; got "both"`},
		{"node without name", func(c *Config) { c.Mode = ModeNode }, "node_name must be set in node mode"},
		{"selector", func(c *Config) { c.LabelSelector = "a in (" }, "label_selector: "},
		{"unknown kind", func(c *Config) { c.Kinds = []string{"Widget"} }, `kinds: unknown kind "Widget"`},
		{"no kinds", func(c *Config) { c.Kinds = nil }, "kinds must name at least one kind, or custom_resources one resource"},
		{"custom resource", func(c *Config) { c.CustomResources = []CustomResource{{Group: "x.io"}} }, "custom_resources[0]: version and resource must be set"},
		{"quiet", func(c *Config) { c.QuietPeriod = 0 }, "quiet_period must be positive"},
		{"reannounce", func(c *Config) { c.ReannounceInterval = -time.Second }, "reannounce_interval must be 0 (off) or positive"},
		{"election in node mode", func(c *Config) {
			c.Mode, c.NodeName, c.LeaderElection.Enabled = ModeNode, "n", true
		}, "leader_election is only for cluster mode"},
		{"election without namespace", func(c *Config) { c.LeaderElection.Enabled = true }, "leader_election: lease_name and lease_namespace must be set"},
		{"election timing", func(c *Config) {
			c.LeaderElection.Enabled, c.LeaderElection.LeaseNamespace, c.LeaderElection.RenewDeadline = true, "ns", time.Minute
		}, "leader_election: need lease_duration > renew_deadline > retry_period > 0"},
		// client-go's leader election panics in RunOrDie on these.
		{"election jitter", func(c *Config) {
			c.LeaderElection.Enabled, c.LeaderElection.LeaseNamespace = true, "ns"
			c.LeaderElection.LeaseDuration, c.LeaderElection.RenewDeadline, c.LeaderElection.RetryPeriod = 15*time.Second, 2200*time.Millisecond, 2*time.Second
		}, "leader_election: renew_deadline (2.2s) must be more than 1.2 x retry_period (2s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			tt.mutate(cfg)
			err := cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.expectedErr)
		})
	}
}
