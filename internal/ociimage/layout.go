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
	outer, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	m, err := outer.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("ociimage: %s holds %d entries, want the one image index", dir, len(m.Manifests))
	}
	return outer.ImageIndex(m.Manifests[0].Digest)
}

// Push pushes the layout at dir to ref, with the credentials of the
// default keychain (the docker config and its credential helpers) unless
// opts say otherwise, and returns the pushed index's digest.
func Push(dir, ref string, opts ...remote.Option) (v1.Hash, error) {
	idx, err := ReadLayout(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	tag, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	opts = append([]remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	if err := remote.WriteIndex(tag, idx, opts...); err != nil {
		return v1.Hash{}, err
	}
	return idx.Digest()
}
