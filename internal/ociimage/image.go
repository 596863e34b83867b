// Package ociimage builds the distribution's container image from Go, with
// no container engine: a static binary and the few files a non-root
// collector needs, as an OCI image index with one manifest per platform.
//
// The build is reproducible: every time in the image (file times, the
// config's created, its history) is the Spec's Created (the commit's time,
// not the clock), tar entries are written in one order with fixed owners,
// and gzip has no header time. The same commit gives the same index digest.
package ociimage

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths and identity inside the image: what deploy/ and the helm values
// rely on (the entrypoint, the default config, the non-root user).
const (
	Entrypoint    = "/otelcol-kubestitch"
	DefaultConfig = "/etc/otelcol-kubestitch/config.yaml"
	// User is distroless's nonroot, the uid the manifests run as.
	User = "65532:65532"
)

// Spec is what an image is built from.
type Spec struct {
	// Binaries are the static collector binaries by platform
	// ("linux/amd64": path); one manifest each, in platform order.
	Binaries map[string]string
	// Config is the default collector config, at DefaultConfig.
	Config []byte
	// License is the project's LICENSE, at /usr/share/doc/kubestitch/LICENSE.
	License []byte
	// Created stamps every time in the image: the commit's time.
	Created time.Time
	// Labels are the org.opencontainers.image.* labels (and annotations).
	Labels map[string]string
	// Ports the collector serves by default (EXPOSE).
	Ports []string
}

// Build makes the image index of spec.
func Build(spec Spec) (v1.ImageIndex, error) {
	if len(spec.Binaries) == 0 {
		return nil, errors.New("ociimage: no binaries")
	}
	if spec.Created.IsZero() {
		return nil, errors.New("ociimage: no creation time (take the commit's)")
	}
	created := spec.Created.UTC().Truncate(time.Second)
	base, err := baseLayer(created)
	if err != nil {
		return nil, err
	}
	platforms := make([]string, 0, len(spec.Binaries))
	for p := range spec.Binaries {
		platforms = append(platforms, p)
	}
	sort.Strings(platforms)

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, fmt.Errorf("ociimage: platform %q: %w", p, err)
		}
		if plat.OS != "linux" {
			return nil, fmt.Errorf("ociimage: platform %q: the image is for linux", p)
		}
		bin, err := os.ReadFile(spec.Binaries[p])
		if err != nil {
			return nil, fmt.Errorf("ociimage: %w", err)
		}
		img, err := platformImage(spec, *plat, base, bin, created)
		if err != nil {
			return nil, fmt.Errorf("ociimage: %s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: plat},
		})
	}
	return mutate.Annotations(idx, spec.Labels).(v1.ImageIndex), nil
}

func platformImage(spec Spec, plat v1.Platform, base v1.Layer, bin []byte, created time.Time) (v1.Image, error) {
	app, err := appLayer(bin, spec.Config, spec.License, created)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	at := v1.Time{Time: created}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: at, CreatedBy: "kubestitch-release: passwd, group, CA certificates, /tmp", Comment: "base"}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{Created: at, CreatedBy: "kubestitch-release: " + Entrypoint + ", " + DefaultConfig + ", LICENSE", Comment: "otelcol-kubestitch"}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Variant = plat.Architecture, plat.OS, plat.Variant
	cf.Created = at
	cf.Config = v1.Config{
		User:         User,
		Entrypoint:   []string{Entrypoint},
		Cmd:          []string{"--config=" + DefaultConfig},
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=" + caBundlePath},
		WorkingDir:   "/",
		Labels:       spec.Labels,
		ExposedPorts: map[string]struct{}{},
	}
	for _, p := range spec.Ports {
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		cf.Config.ExposedPorts[p] = struct{}{}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, spec.Labels).(v1.Image), nil
}
