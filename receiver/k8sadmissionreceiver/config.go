package k8sadmissionreceiver

import (
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/config/confighttp"
)

// Config of the k8sadmission receiver.
type Config struct {
	// ServerConfig is the HTTPS server kube-apiserver calls: endpoint, tls
	// (cert_file and key_file are required; reload_interval re-reads them,
	// so a rotated certificate is served without a restart) and
	// max_request_body_size (a larger review is answered 400).
	ServerConfig confighttp.ServerConfig `mapstructure:",squash"`
	// Path the ValidatingWebhookConfiguration names.
	Path string `mapstructure:"path"`
	// QueueSize bounds the spans waiting for the pipeline; when it is full
	// a review is still answered at once and its span dropped and counted,
	// so a backed-up pipeline never slows the apiserver down.
	QueueSize int `mapstructure:"queue_size"`
	// MaxConcurrentReviews bounds the reviews being read and answered at
	// once; one more is answered 429 at once (kube-apiserver then goes on,
	// failurePolicy Ignore) and counted.
	MaxConcurrentReviews int `mapstructure:"max_concurrent_reviews"`
	// User says how the requesting user goes into the span
	// (k8s.admission.user): accounts (default), name, hash (the first 16 hex digits
	// of its SHA-256: the same user is the same value, the name is not
	// shown; a guessable name can still be confirmed by hashing it), or
	// none. Under OIDC a user name is often an e-mail address.
	User string `mapstructure:"user"`
	// AllowAnyClient takes reviews from a TLS client without a client
	// certificate: only where kube-apiserver cannot present one (a managed
	// control plane whose admission configuration you cannot set) and
	// nothing but kube-apiserver reaches the port. By default
	// tls.client_ca_file is required: a review is trusted to name the
	// object a write request changed. Default: false.
	AllowAnyClient bool `mapstructure:"allow_any_client"`
}

// The values of Config.User.
const (
	UserName = "name"
	UserHash = "hash"
	UserNone = "none"
	// UserAccounts keeps the names of Kubernetes' own accounts (system:
	// users: components, nodes, ServiceAccounts, which say which
	// controller wrote) and puts PersonUser for any other.
	UserAccounts = "accounts"
)

// PersonUser stands for a user who is not one of Kubernetes' own accounts
// under user: accounts: a person's name (an e-mail address under OIDC)
// stays out of spans.
const PersonUser = "(user)"

// Validate checks the configuration at start-up.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.ServerConfig.NetAddr.Endpoint == "" {
		errs = append(errs, errors.New("endpoint must be set"))
	}
	if !cfg.ServerConfig.TLS.HasValue() {
		errs = append(errs, errors.New("tls must be set: kube-apiserver calls admission webhooks over HTTPS only"))
	} else if t := cfg.ServerConfig.TLS.Get(); t.CertFile == "" && t.CertPem == "" || t.KeyFile == "" && t.KeyPem == "" {
		errs = append(errs, errors.New("tls needs a serving certificate and key (cert_file and key_file)"))
	} else if t.ClientCAFile == "" && !cfg.AllowAnyClient {
		errs = append(errs, errors.New("tls.client_ca_file is required: the CA of kube-apiserver's client certificate for webhooks (deploy/control-plane/admission-config.yaml); or allow_any_client: true, where kube-apiserver cannot present one"))
	}
	if !strings.HasPrefix(cfg.Path, "/") {
		errs = append(errs, fmt.Errorf("path %q must start with /", cfg.Path))
	}
	if cfg.QueueSize <= 0 {
		errs = append(errs, errors.New("queue_size must be positive"))
	}
	if cfg.MaxConcurrentReviews <= 0 {
		errs = append(errs, errors.New("max_concurrent_reviews must be positive"))
	}
	if cfg.ServerConfig.ReadTimeout <= 0 {
		errs = append(errs, errors.New("read_timeout must be positive: a client that sends its body slowly would hold a connection forever"))
	}
	switch cfg.User {
	case UserName, UserHash, UserNone, UserAccounts:
	default:
		errs = append(errs, fmt.Errorf("user must be one of accounts, name, hash, none; got %q", cfg.User))
	}
	if cfg.ServerConfig.MaxRequestBodySize < 0 {
		errs = append(errs, errors.New("max_request_body_size must not be negative"))
	}
	return errors.Join(errs...)
}
