// Package shippedimage gives tests the distribution image the way a user
// gets it: built by `make image`'s own command, pushed to a registry
// (go-containerregistry's, served in-process on 127.0.0.1), pulled back by
// digest and unpacked into a root file system that test/podrunner runs.
package shippedimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubestitch/kubestitch/internal/ociimage"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/podrunner"
)

// Build runs `kubestitch-release image` (what `make image` runs) for the
// platforms given (all of the image's when none) into a layout under a
// temp dir of t, and returns the layout's directory.
func Build(t testing.TB, platforms ...string) string {
	t.Helper()
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "oci")
	args := []string{"run", "./cmd/kubestitch-release", "image", "-out", out}
	if len(platforms) > 0 {
		args = append(args, "-platforms", strings.Join(platforms, ","))
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the image: %v\n%s", err, b)
	}
	return out
}

// Registry serves an empty registry on 127.0.0.1 until t ends and returns
// its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// Pull pulls ref (name@sha256:...) for this machine's linux platform and
// unpacks it under a temp dir of t: the image as the runner runs it.
func Pull(t testing.TB, ref string) podrunner.Image {
	t.Helper()
	digest, err := name.NewDigest(ref)
	if err != nil {
		t.Fatalf("%s: pull by digest: %v", ref, err)
	}
	idx, err := remote.Index(digest)
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	img, err := platformImage(idx, v1.Platform{OS: "linux", Architecture: runtime.GOARCH})
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := unpack(img, rootfs); err != nil {
		t.Fatalf("unpacking %s: %v", ref, err)
	}
	return podrunner.Image{RootFS: rootfs, Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd, User: cf.Config.User,
		Env: cf.Config.Env}
}

// ForPods is the shipped image for this machine as test/podrunner runs
// it: built, pushed to a registry of t's, pulled back by digest and
// unpacked.
func ForPods(t testing.TB) podrunner.Image {
	t.Helper()
	layout := Build(t, "linux/"+runtime.GOARCH)
	ref := Registry(t) + "/kubestitch/otelcol-kubestitch:test"
	// Anonymous: a registry of the test's, never the developer's
	// credential helpers.
	pushed, err := ociimage.Push(layout, ref, remote.WithAuth(authn.Anonymous))
	if err != nil {
		t.Fatalf("pushing the image: %v", err)
	}
	repo, _, _ := strings.Cut(ref, ":test")
	return Pull(t, repo+"@"+pushed.Digest.String())
}

func platformImage(idx v1.ImageIndex, want v1.Platform) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.Satisfies(want) {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no %s image in the index", want.String())
}

// unpack writes img's flattened file system into dir with the modes of its
// layers, and their owners when run as root. Every write goes through an
// os.Root: no entry name or symlink in the image can reach outside dir.
func unpack(img v1.Image, dir string) error {
	// The root's own mode, whatever the umask: the image has no entry for
	// "/", and an overlay's root takes its lower layer's mode.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	asRoot := os.Geteuid() == 0
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Clean(filepath.FromSlash(strings.TrimPrefix(h.Name, "/")))
		if p == "." {
			continue
		}
		mode := os.FileMode(h.Mode) & os.ModePerm
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := root.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := root.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := root.Symlink(h.Linkname, p); err != nil {
				return err
			}
			continue
		default:
			return fmt.Errorf("%s: entry type %c is not unpacked here", h.Name, h.Typeflag)
		}
		if asRoot {
			if err := root.Lchown(p, h.Uid, h.Gid); err != nil {
				return err
			}
		}
		// After chown, which clears setuid bits; sticky (/tmp) kept.
		if h.Mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		if err := root.Chmod(p, mode); err != nil {
			return err
		}
	}
}
