// Package buildermanifest reads builder-config.yaml, the ocb manifest of
// the distribution: the one place its version lives (make image, make
// release and the tests that hold the manifests to it all read it here).
package buildermanifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// Dist is the manifest's dist section, as far as a release needs it.
type Dist struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Version     string `json:"version"`
}

// Read reads the dist section of root/builder-config.yaml; a manifest
// without a version is an error.
func Read(root string) (Dist, error) {
	b, err := os.ReadFile(filepath.Join(root, "builder-config.yaml"))
	if err != nil {
		return Dist{}, err
	}
	var cfg struct {
		Dist Dist `json:"dist"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return Dist{}, fmt.Errorf("builder-config.yaml: %w", err)
	}
	if cfg.Dist.Version == "" {
		return Dist{}, errors.New("builder-config.yaml: no dist.version")
	}
	return cfg.Dist, nil
}
