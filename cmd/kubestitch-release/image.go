package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubestitch/kubestitch/internal/ociimage"
	"github.com/kubestitch/kubestitch/internal/sbom"
)

// writeImage writes the image of bins (platform: binary) as an OCI image
// layout at out (replacing it) tagged with the image reference, and the
// SBOM of each platform's binary beside it; it returns the index digest.
func (s *source) writeImage(bins map[string]string, out string) (v1.Hash, error) {
	config, err := os.ReadFile(filepath.Join(s.root, "distribution", "config.yaml"))
	if err != nil {
		return v1.Hash{}, err
	}
	lic, err := os.ReadFile(filepath.Join(s.root, "LICENSE"))
	if err != nil {
		return v1.Hash{}, err
	}
	idx, err := ociimage.Build(ociimage.Spec{
		Binaries: bins, Config: config, License: lic, Created: s.created, Labels: s.labels(),
		Ports: []string{"4317", "4318", "13133"},
	})
	if err != nil {
		return v1.Hash{}, err
	}
	if err := os.RemoveAll(out); err != nil {
		return v1.Hash{}, err
	}
	if err := ociimage.WriteLayout(out, idx, s.imageRef()); err != nil {
		return v1.Hash{}, err
	}
	for p, bin := range bins {
		name := fmt.Sprintf("%s_%s_%s.sbom.cdx.json", binaryName, s.version, strings.ReplaceAll(p, "/", "_"))
		if err := sbom.Write(filepath.Join(filepath.Dir(out), name), bin, s.version, license, s.created); err != nil {
			return v1.Hash{}, err
		}
	}
	return idx.Digest()
}

// push pushes the layout at dir to ref with the user's registry
// credentials (docker config, credential helpers).
func push(dir, ref string) (ociimage.Pushed, error) {
	return ociimage.Push(dir, ref)
}
