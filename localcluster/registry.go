package localcluster

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImageRegistry is an OCI registry served in-process on 127.0.0.1. The
// real node pulls every image it runs from it, as it would from a remote
// registry: the pull is real (resolve, manifest, config, layers over
// HTTP), only the network is loopback.
type ImageRegistry struct {
	// Host is host:port, the first part of every reference it serves.
	Host string
	srv  *http.Server

	mu    sync.Mutex
	pulls map[string]int // repository -> manifest GETs
}

// StartImageRegistry serves an empty registry on a free loopback port.
func StartImageRegistry() (*ImageRegistry, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	r := &ImageRegistry{Host: l.Addr().String(), pulls: map[string]int{}}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if repo, _, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/manifests/"); ok && req.Method == http.MethodGet {
			r.mu.Lock()
			r.pulls[repo]++
			r.mu.Unlock()
		}
		h.ServeHTTP(w, req)
	})}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

// Pulls is how many times a manifest of repository repo was fetched.
func (r *ImageRegistry) Pulls(repo string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pulls[repo]
}

// Close stops serving.
func (r *ImageRegistry) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

// Push uploads an image or an index as ref (a reference in this registry)
// and returns ref@digest.
func (r *ImageRegistry) Push(ctx context.Context, ref string, img remote.Taggable) (string, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(ref, r.Host+"/") {
		return "", fmt.Errorf("localcluster: %s is not in the loopback registry %s", ref, r.Host)
	}
	var digest v1.Hash
	switch v := img.(type) {
	case v1.Image:
		if err := remote.Write(tag, v, remote.WithContext(ctx)); err != nil {
			return "", err
		}
		digest, err = v.Digest()
	case v1.ImageIndex:
		if err := remote.WriteIndex(tag, v, remote.WithContext(ctx)); err != nil {
			return "", err
		}
		digest, err = v.Digest()
	default:
		return "", errors.New("localcluster: push needs an image or an index")
	}
	if err != nil {
		return "", err
	}
	return ref + "@" + digest.String(), nil
}

// BuildBinaryImage builds Go package pkg (a path in this repository) as a
// static binary and makes a one-layer image of it for this machine's
// platform: the binary at /<base of pkg>, its entrypoint, run as user
// 65532. The test bed's own images (pause, the demo's workload) are made
// this way: no container engine, no base image to fetch.
func BuildBinaryImage(ctx context.Context, pkg string) (v1.Image, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "kubestitch-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./"+pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("localcluster: go build %s: %w\n%s", pkg, err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	path := "/" + filepath.Base(pkg)
	if err := tw.WriteHeader(&tar.Header{Name: path[1:], Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(b); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layer.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), l)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = []string{path}
	cf.Config.User = "65532:65532"
	return mutate.ConfigFile(img, cf)
}

// pushNodeImages starts the loopback registry and pushes the test bed's
// own images to it: the sandbox (pause) and the demo's workload.
func (c *Cluster) pushNodeImages(ctx context.Context) error {
	var err error
	if c.Registry, err = StartImageRegistry(); err != nil {
		return err
	}
	for _, im := range []struct {
		pkg, repo string
		ref       *string
	}{
		{"localcluster/nodeimages/pause", "kubestitch/pause", &c.PauseImage},
		{"localcluster/nodeimages/demoapp", "kubestitch/demoapp", &c.DemoImage},
	} {
		img, err := BuildBinaryImage(ctx, im.pkg)
		if err != nil {
			return err
		}
		ref := c.Registry.Host + "/" + im.repo + ":1"
		if _, err := c.Registry.Push(ctx, ref, img); err != nil {
			return fmt.Errorf("localcluster: pushing %s: %w", ref, err)
		}
		*im.ref = ref
	}
	return nil
}

// Digest is the digest of the manifest ref names in this registry.
func (r *ImageRegistry) Digest(ctx context.Context, ref string) (string, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(parsed, remote.WithContext(ctx))
	if err != nil {
		return "", err
	}
	return desc.Digest.String(), nil
}
