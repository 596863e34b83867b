package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kubestitch/kubestitch/internal/buildermanifest"
)

// The image's name and the project's; the tag is the version. Every
// manifest in deploy/ names this repository (test/release checks it).
const (
	imageRepository = "ghcr.io/kubestitch/otelcol-kubestitch"
	projectURL      = "https://github.com/kubestitch/kubestitch"
	license         = "Apache-2.0"
	binaryName      = "otelcol-kubestitch"
)

// imagePlatforms are the image's; releasePlatforms the archives'.
var (
	imagePlatforms   = []string{"linux/amd64", "linux/arm64"}
	releasePlatforms = []string{"darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"}
)

// source is the checkout a release is built from.
type source struct {
	root        string
	version     string // what this build says it is
	configured  string // builder-config.yaml's dist.version
	description string
	revision    string
	created     time.Time
}

// loadSource reads the checkout that holds the working directory; version,
// if set, overrides builder-config.yaml's.
func loadSource(version string) (*source, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	dist, err := buildermanifest.Read(root)
	if err != nil {
		return nil, err
	}
	s := &source{root: root, version: dist.Version, configured: dist.Version, description: dist.Description}
	if version != "" {
		s.version = strings.TrimPrefix(version, "v")
	}
	if !semver.MatchString(s.version) {
		return nil, fmt.Errorf("version %q is not a semantic version (x.y.z[-pre])", s.version)
	}
	if s.revision, s.created, err = commit(root); err != nil {
		return nil, err
	}
	return s, nil
}

var semver = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)

func (s *source) imageRef() string { return imageRepository + ":" + s.version }

// labels are the image's org.opencontainers.image.* labels.
func (s *source) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       binaryName,
		"org.opencontainers.image.description": s.description,
		"org.opencontainers.image.source":      projectURL,
		"org.opencontainers.image.url":         projectURL,
		"org.opencontainers.image.version":     s.version,
		"org.opencontainers.image.revision":    s.revision,
		"org.opencontainers.image.licenses":    license,
		"org.opencontainers.image.created":     s.created.UTC().Format(time.RFC3339),
	}
}

// commit is HEAD's hash ("-dirty" when the tree has changes, as the Go
// toolchain's vcs.modified) and time; SOURCE_DATE_EPOCH, when set, is the
// time instead (a build outside git, or a distribution's own rebuild).
func commit(root string) (string, time.Time, error) {
	var created time.Time
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		sec, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", e, err)
		}
		created = time.Unix(sec, 0)
	}
	rev, err := git(root, "rev-parse", "HEAD")
	if err != nil {
		if created.IsZero() {
			return "", time.Time{}, fmt.Errorf("no git commit to take the revision and time from, and no SOURCE_DATE_EPOCH: %w", err)
		}
		return "unknown", created, nil
	}
	if created.IsZero() {
		ct, err := git(root, "log", "-1", "--format=%ct", "HEAD")
		if err != nil {
			return "", time.Time{}, err
		}
		sec, err := strconv.ParseInt(ct, 10, 64)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("commit time %q: %w", ct, err)
		}
		created = time.Unix(sec, 0)
	}
	if st, err := git(root, "status", "--porcelain"); err == nil && st != "" {
		rev += "-dirty"
	}
	return rev, created.UTC(), nil
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// repoRoot is the main module's directory.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run inside the Kubestitch checkout")
	}
	return filepath.Dir(mod), nil
}

// writeJSON writes v to path, indented, with a final newline.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
