package k8swatchreceiver

import (
	"fmt"
	"os"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// clientsProvider builds the API clients; tests pass fakes.
type clientsProvider func(cfg *Config) (kubernetes.Interface, dynamic.Interface, error)

func makeClients(cfg *Config) (kubernetes.Interface, dynamic.Interface, error) {
	var rc *rest.Config
	var err error
	switch cfg.AuthType {
	case AuthTypeServiceAccount:
		rc, err = rest.InClusterConfig()
	case AuthTypeKubeConfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if cfg.KubeConfig != "" {
			rules.ExplicitPath = cfg.KubeConfig
		}
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
			&clientcmd.ConfigOverrides{CurrentContext: cfg.Context}).ClientConfig()
	case AuthTypeNone:
		rc = &rest.Config{Host: os.Getenv("KUBERNETES_SERVICE_HOST")}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("k8swatch: auth_type %s: %w", cfg.AuthType, err)
	}
	rc.UserAgent = "kubestitch-k8swatch"
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, err
	}
	dc, err := dynamic.NewForConfig(rc)
	return kc, dc, err
}
