package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// build compiles the distribution for one platform ("linux/arm64") into
// dir and returns the binary's path. Static (CGO_ENABLED=0), -trimpath,
// no symbol table and an empty build ID: the same source, the same bytes.
func (s *source) build(platform, dir string) (string, error) {
	goos, goarch, ok := strings.Cut(platform, "/")
	if !ok {
		return "", fmt.Errorf("platform %q: want os/arch", platform)
	}
	out := filepath.Join(dir, goos+"_"+goarch, binaryName)
	args := []string{"build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out}
	if s.version != s.configured {
		overlay, err := s.versionOverlay(dir)
		if err != nil {
			return "", err
		}
		args = append(args, "-overlay", overlay)
	}
	args = append(args, "./distribution")
	cmd := exec.Command("go", args...)
	cmd.Dir = s.root
	cmd.Env = buildEnv(goos, goarch)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = os.Stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build for %s: %w\n%s", platform, err, stderr.String())
	}
	return out, nil
}

// buildEnv is the caller's environment without the settings that would
// change the binary (GOAMD64, GOEXPERIMENT, GOFLAGS, CC, ...): the release
// is the same on every machine with go.mod's toolchain, whatever the
// shell exports.
func buildEnv(goos, goarch string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "GOPATH", k == "GOMODCACHE", k == "GOCACHE", k == "GOPROXY", k == "GONOPROXY", k == "GOSUMDB",
			k == "GONOSUMDB", k == "GOPRIVATE", k == "GOINSECURE", k == "GOTMPDIR", k == "GOTOOLCHAIN":
			env = append(env, kv)
		case strings.HasPrefix(k, "GO"), strings.HasPrefix(k, "CGO_"), k == "CC", k == "CXX", k == "AR", k == "PKG_CONFIG":
			// dropped
		default:
			env = append(env, kv)
		}
	}
	return append(env, "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOFLAGS=-mod=readonly")
}

// buildAll builds each platform in turn (go build is parallel already).
func (s *source) buildAll(platforms []string, dir string) (map[string]string, error) {
	bins := map[string]string{}
	for _, p := range platforms {
		bin, err := s.build(p, dir)
		if err != nil {
			return nil, err
		}
		bins[p] = bin
	}
	return bins, nil
}

// versionOverlay builds a release whose version differs from
// builder-config.yaml's (a test release): ocb writes the version into the
// generated distribution/main.go, which is never edited by hand, so the
// build reads a copy with the version replaced (go build -overlay).
func (s *source) versionOverlay(dir string) (string, error) {
	mainGo := filepath.Join(s.root, "distribution", "main.go")
	b, err := os.ReadFile(mainGo)
	if err != nil {
		return "", err
	}
	old := "Version:     " + strconv.Quote(s.configured) + ","
	if bytes.Count(b, []byte(old)) != 1 {
		return "", fmt.Errorf("distribution/main.go: no single %q to set the version in (regenerate with make generate)", old)
	}
	patched := filepath.Join(dir, "main.go")
	if err := os.WriteFile(patched, bytes.Replace(b, []byte(old), []byte("Version:     "+strconv.Quote(s.version)+","), 1), 0o644); err != nil {
		return "", err
	}
	overlay := filepath.Join(dir, "overlay.json")
	return overlay, writeJSON(overlay, map[string]map[string]string{"Replace": {mainGo: patched}})
}
