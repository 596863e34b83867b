package k8sadmissionreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/kubestitch/kubestitch/receiver/k8sadmissionreceiver/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(metadata.Type.String())
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, sub.Unmarshal(cfg))
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, "0.0.0.0:9443", cfg.ServerConfig.NetAddr.Endpoint)
	assert.Equal(t, 500, cfg.QueueSize)
	assert.Equal(t, int64(2<<20), cfg.ServerConfig.MaxRequestBodySize)
	tls := cfg.ServerConfig.TLS.Get()
	assert.Equal(t, "/etc/kubestitch/webhook/tls.crt", tls.CertFile)
	assert.Equal(t, time.Minute, tls.ReloadInterval)
}

func TestConfigValidate(t *testing.T) {
	withTLS := func(c *Config) {
		c.ServerConfig.TLS = configoptional.Some(configtls.ServerConfig{Config: configtls.Config{CertFile: "c", KeyFile: "k"}, ClientCAFile: "ca"})
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"default has no certificate", func(*Config) {}, "tls must be set"},
		{"tls without a key", func(c *Config) {
			c.ServerConfig.TLS = configoptional.Some(configtls.ServerConfig{Config: configtls.Config{CertFile: "c"}})
		}, "cert_file and key_file"},
		{"relative path", func(c *Config) { withTLS(c); c.Path = "validate" }, "must start with /"},
		{"no queue", func(c *Config) { withTLS(c); c.QueueSize = 0 }, "queue_size must be positive"},
		{"no endpoint", func(c *Config) { withTLS(c); c.ServerConfig.NetAddr.Endpoint = "" }, "endpoint must be set"},
		{"no client CA", func(c *Config) {
			withTLS(c)
			c.ServerConfig.TLS.Get().ClientCAFile = ""
		}, "tls.client_ca_file is required"},
		{"no client CA, any client allowed", func(c *Config) {
			withTLS(c)
			c.ServerConfig.TLS.Get().ClientCAFile = ""
			c.AllowAnyClient = true
		}, ""},
		{"valid", withTLS, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			tc.mutate(cfg)
			err := cfg.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestFactoryCreatesTraces(t *testing.T) {
	f := NewFactory()
	assert.Equal(t, metadata.Type, f.Type())
	cfg := f.CreateDefaultConfig().(*Config)
	assert.Equal(t, "/validate", cfg.Path)
	r, err := f.CreateTraces(t.Context(), receivertest.NewNopSettings(metadata.Type), cfg, nil)
	require.NoError(t, err)
	require.NotNil(t, r)
}

func TestUserSetting(t *testing.T) {
	const name = "jane@example.com"
	assert.Equal(t, name, userAttribute(UserName, name))
	assert.Equal(t, "", userAttribute(UserNone, name))
	h := userAttribute(UserHash, name)
	assert.Regexp(t, `^sha256:[0-9a-f]{16}$`, h)
	assert.NotContains(t, h, "jane")
	assert.Equal(t, h, userAttribute(UserHash, name), "the same user, the same value")
	assert.NotEqual(t, h, userAttribute(UserHash, "john@example.com"))
	assert.Equal(t, "", userAttribute(UserHash, ""), "no user, nothing")

	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, UserAccounts, cfg.User, "default")
	cfg.User = "email"
	assert.ErrorContains(t, cfg.Validate(), `user must be one of accounts, name, hash, none; got "email"`)
}
