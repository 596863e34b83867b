package k8swatchreceiver

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/leaderelection"
)

// Auth types, as in the contrib Kubernetes components.
const (
	AuthTypeServiceAccount = "serviceAccount"
	AuthTypeKubeConfig     = "kubeConfig"
	AuthTypeNone           = "none"
)

// Modes.
const (
	// ModeNode watches the pods of one node (the agent DaemonSet).
	ModeNode = "node"
	// ModeCluster watches everything else (the gateway).
	ModeCluster = "cluster"
)

// builtinKinds are the kinds the receiver knows by name.
var builtinKinds = []string{"Pod", "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Node", "Event"}

// The values of Config.EventMessages.
const (
	EventMessagesAll     = "all"
	EventMessagesNone    = "none"
	EventMessagesReasons = "reasons"
)

// DefaultEventMessageReasons are the Events whose messages go into spans
// by default: written by Kubernetes from its own decisions (the
// scheduler's, a controller's, the kubelet's pulls, mounts and restarts),
// never a workload's output as an exec probe's Unhealthy message is.
var DefaultEventMessageReasons = []string{"FailedScheduling", "FailedCreate", "FailedMount", "FailedAttachVolume", "BackOff", "Failed", "Evicted", "Preempted"}

// Config of the k8swatch receiver.
type Config struct {
	// AuthType is how to reach the API server: serviceAccount, kubeConfig or
	// none. Default: serviceAccount.
	AuthType string `mapstructure:"auth_type"`
	// KubeConfig is the kubeconfig file for auth_type kubeConfig; empty uses
	// $KUBECONFIG and the default loading rules. Default: "".
	KubeConfig string `mapstructure:"kube_config"`
	// Context is the kubeconfig context for auth_type kubeConfig. Default: "".
	Context string `mapstructure:"context"`
	// Mode is node (pods of node_name only) or cluster. Default: cluster.
	Mode string `mapstructure:"mode"`
	// NodeName is the node whose pods are watched in node mode, usually
	// ${env:K8S_NODE_NAME} from the downward API. Default: "".
	NodeName string `mapstructure:"node_name"`
	// Namespaces to watch; empty means all. Default: [].
	Namespaces []string `mapstructure:"namespaces"`
	// LabelSelector applies to every watched kind except Events and Nodes.
	// Default: "".
	LabelSelector string `mapstructure:"label_selector"`
	// Kinds to watch, from Pod, ReplicaSet, Deployment, StatefulSet,
	// DaemonSet, Job, CronJob, Node, Event. Node mode only uses Pod and
	// Event. Default: all of them.
	Kinds []string `mapstructure:"kinds"`
	// CustomResources to watch through the dynamic client, converging by the
	// generic rule. Default: [].
	CustomResources []CustomResource `mapstructure:"custom_resources"`
	// QuietPeriod closes an operation of a custom resource without status
	// after this long without a change. Default: 30s.
	QuietPeriod time.Duration `mapstructure:"quiet_period"`
	// ReannounceInterval is how often the trigger of each open operation
	// is sent again, with the same IDs, until the operation ends: a
	// processor that lost the operation (a gateway that died, its
	// namespaces moved to another) learns it again from the next one,
	// and one that has it drops the repeat. 0 turns it off. Default: 2s.
	ReannounceInterval time.Duration `mapstructure:"reannounce_interval"`
	// AnnotationAllowList names the only annotations copied into spans.
	// Default: [].
	AnnotationAllowList []string `mapstructure:"annotation_allow_list"`
	// EventMessages says which Kubernetes Event messages go into spans
	// (k8s.event.message): all, none, or reasons (default): only those of
	// Events whose reason is in event_message_reasons (default:
	// DefaultEventMessageReasons). A message can hold an exec probe's
	// output. The reason itself always goes in.
	EventMessages       string   `mapstructure:"event_messages"`
	EventMessageReasons []string `mapstructure:"event_message_reasons"`
	// Storage is the ID of a storage extension (file_storage) that keeps what
	// was emitted per object across restarts. Default: none.
	Storage *component.ID `mapstructure:"storage"`
	// LeaderElection makes exactly one replica of a gateway watch.
	LeaderElection LeaderElectionConfig `mapstructure:"leader_election"`
	// FragmentKeyFile is the key (a mounted Secret, at least 32 bytes) every
	// fragment is signed with: the k8sstitch processor takes a span as a
	// fragment only with a valid signature. Default: "" (unsigned).
	FragmentKeyFile string `mapstructure:"fragment_key_file"`
}

// CustomResource names a resource of the dynamic client.
type CustomResource struct {
	Group    string `mapstructure:"group"`
	Version  string `mapstructure:"version"`
	Resource string `mapstructure:"resource"`
}

// LeaderElectionConfig of the cluster mode.
type LeaderElectionConfig struct {
	// Enabled turns leader election on. Default: false.
	Enabled bool `mapstructure:"enabled"`
	// LeaseName of the Lease. Default: kubestitch-k8swatch.
	LeaseName string `mapstructure:"lease_name"`
	// LeaseNamespace of the Lease, usually ${env:POD_NAMESPACE}. Default: "".
	LeaseNamespace string `mapstructure:"lease_namespace"`
	// Identity of this replica; usually ${env:POD_NAME}. Default: host name.
	Identity string `mapstructure:"identity"`
	// LeaseDuration, RenewDeadline, RetryPeriod as in client-go. Defaults:
	// 15s, 10s, 2s.
	LeaseDuration time.Duration `mapstructure:"lease_duration"`
	RenewDeadline time.Duration `mapstructure:"renew_deadline"`
	RetryPeriod   time.Duration `mapstructure:"retry_period"`
}

var _ component.Config = (*Config)(nil)

var (
	errNodeNameRequired = errors.New("node_name must be set in node mode")
	errNoKinds          = errors.New("kinds must name at least one kind, or custom_resources one resource")
)

// Validate checks the configuration.
func (cfg *Config) Validate() error {
	switch cfg.AuthType {
	case AuthTypeServiceAccount, AuthTypeKubeConfig, AuthTypeNone:
	default:
		return fmt.Errorf("auth_type must be one of %s, %s, %s; got %q", AuthTypeServiceAccount, AuthTypeKubeConfig, AuthTypeNone, cfg.AuthType)
	}
	switch cfg.Mode {
	case ModeCluster:
	case ModeNode:
		if cfg.NodeName == "" {
			return errNodeNameRequired
		}
	default:
		return fmt.Errorf("mode must be %s or %s; got %q", ModeNode, ModeCluster, cfg.Mode)
	}
	if cfg.LabelSelector != "" {
		if _, err := labels.Parse(cfg.LabelSelector); err != nil {
			return fmt.Errorf("label_selector: %w", err)
		}
	}
	if len(cfg.Kinds) == 0 && len(cfg.CustomResources) == 0 {
		return errNoKinds
	}
	for _, k := range cfg.Kinds {
		if !isBuiltinKind(k) {
			return fmt.Errorf("kinds: unknown kind %q; known kinds are %v (others go in custom_resources)", k, builtinKinds)
		}
	}
	for i, cr := range cfg.CustomResources {
		if cr.Version == "" || cr.Resource == "" {
			return fmt.Errorf("custom_resources[%d]: version and resource must be set", i)
		}
	}
	switch cfg.EventMessages {
	case EventMessagesAll, EventMessagesNone:
	case EventMessagesReasons:
		if len(cfg.EventMessageReasons) == 0 {
			return errors.New("event_messages: reasons needs event_message_reasons")
		}
	default:
		return fmt.Errorf("event_messages must be one of all, none, reasons; got %q", cfg.EventMessages)
	}
	if cfg.QuietPeriod <= 0 {
		return errors.New("quiet_period must be positive")
	}
	if cfg.ReannounceInterval < 0 {
		return errors.New("reannounce_interval must be 0 (off) or positive")
	}
	if le := cfg.LeaderElection; le.Enabled {
		if cfg.Mode != ModeCluster {
			return errors.New("leader_election is only for cluster mode: every agent watches its own node")
		}
		if le.LeaseName == "" || le.LeaseNamespace == "" {
			return errors.New("leader_election: lease_name and lease_namespace must be set")
		}
		if le.LeaseDuration <= le.RenewDeadline || le.RenewDeadline <= le.RetryPeriod || le.RetryPeriod <= 0 {
			return errors.New("leader_election: need lease_duration > renew_deadline > retry_period > 0")
		}
		// client-go's leader election refuses (RunOrDie panics) unless
		// the renewal outlasts a jittered retry.
		if le.RenewDeadline <= time.Duration(leaderelection.JitterFactor*float64(le.RetryPeriod)) {
			return fmt.Errorf("leader_election: renew_deadline (%s) must be more than %g x retry_period (%s)", le.RenewDeadline, leaderelection.JitterFactor, le.RetryPeriod)
		}
	}
	return nil
}

func isBuiltinKind(k string) bool {
	for _, b := range builtinKinds {
		if b == k {
			return true
		}
	}
	return false
}
