package ociimage

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Annotations of the index in a layout: its tag (the OCI spec's; skopeo's
// oci:DIR:TAG) and its full name (what containerd's import names it).
const (
	RefNameAnnotation        = "org.opencontainers.image.ref.name"
	ContainerdNameAnnotation = "io.containerd.image.name"
)

// WriteLayout writes idx as the only entry of a new OCI image layout at
// dir (which must not exist or be empty), named ref (repository:tag).
func WriteLayout(dir string, idx v1.ImageIndex, ref string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("ociimage: %s is not empty", dir)
	}
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("ociimage: %q: %w", ref, err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{RefNameAnnotation: tag.TagStr(), ContainerdNameAnnotation: ref}))
}

// ReadLayout is the image index of the layout at dir: its only entry.
func ReadLayout(dir string) (v1.ImageIndex, error) {
	idx, _, err := readLayout(dir)
	return idx, err
}

// LayoutName is the name the layout at dir was written with.
func LayoutName(dir string) (string, error) {
	_, ref, err := readLayout(dir)
	return ref, err
}

func readLayout(dir string) (v1.ImageIndex, string, error) {
	outer, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, "", err
	}
	m, err := outer.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	if len(m.Manifests) != 1 {
		return nil, "", fmt.Errorf("ociimage: %s holds %d entries, want the one image index", dir, len(m.Manifests))
	}
	idx, err := outer.ImageIndex(m.Manifests[0].Digest)
	return idx, m.Manifests[0].Annotations[ContainerdNameAnnotation], err
}

// Pushed is where a push put the image: the index's digest and each
// platform's manifest digest (what a platform's attestation names).
type Pushed struct {
	Digest    v1.Hash
	Platforms map[string]v1.Hash
}

// Push pushes the layout at dir to ref (registry/repository:tag, written
// out in full: nothing defaults to Docker Hub or latest), with the
// credentials of the default keychain (the docker config and its
// credential helpers) unless opts give others.
func Push(dir, ref string, opts ...remote.Option) (Pushed, error) {
	idx, err := ReadLayout(dir)
	if err != nil {
		return Pushed{}, err
	}
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return Pushed{}, fmt.Errorf("ociimage: %q: want registry/repository:tag in full: %w", ref, err)
	}
	if len(opts) == 0 {
		opts = []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	}
	if err := remote.WriteIndex(tag, idx, opts...); err != nil {
		return Pushed{}, err
	}
	out := Pushed{Platforms: map[string]v1.Hash{}}
	if out.Digest, err = idx.Digest(); err != nil {
		return Pushed{}, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return Pushed{}, err
	}
	for _, d := range m.Manifests {
		if d.Platform != nil {
			out.Platforms[d.Platform.String()] = d.Digest
		}
	}
	return out, nil
}
