package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kubestitch/kubestitch/internal/sbom"
)

// release writes what a release ships into out (replacing it), the way
// opentelemetry-collector-releases names its goreleaser artifacts:
//
//	otelcol-kubestitch_V_OS_ARCH.tar.gz            binary, LICENSE, README.md, default config
//	otelcol-kubestitch_V_OS_ARCH.tar.gz.sbom.cdx.json  the binary's modules (CycloneDX)
//	otelcol-kubestitch_V_checksums.txt              SHA-256 of every file above (sha256sum -c)
//	oci/                                            the image (linux/amd64, linux/arm64), from the same linux binaries
//	otelcol-kubestitch_V_linux_ARCH.sbom.cdx.json   the image's SBOMs (the same binaries)
func (s *source) release(out string) error {
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "kubestitch-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bins, err := s.buildAll(releasePlatforms, work)
	if err != nil {
		return err
	}
	var files []string
	for _, p := range releasePlatforms {
		archive := fmt.Sprintf("%s_%s_%s.tar.gz", binaryName, s.version, strings.ReplaceAll(p, "/", "_"))
		if err := s.archive(filepath.Join(out, archive), bins[p]); err != nil {
			return err
		}
		if err := sbom.Write(filepath.Join(out, archive+".sbom.cdx.json"), bins[p], s.version, license, s.created); err != nil {
			return err
		}
		files = append(files, archive, archive+".sbom.cdx.json")
	}
	image := map[string]string{}
	for _, p := range imagePlatforms {
		image[p] = bins[p]
	}
	digest, err := s.writeImage(image, filepath.Join(out, "oci"))
	if err != nil {
		return err
	}
	for _, p := range imagePlatforms {
		files = append(files, fmt.Sprintf("%s_%s_%s.sbom.cdx.json", binaryName, s.version, strings.ReplaceAll(p, "/", "_")))
	}
	sort.Strings(files)
	var sums strings.Builder
	for _, f := range files {
		sum, err := sha256File(filepath.Join(out, f))
		if err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, f)
	}
	checksums := fmt.Sprintf("%s_%s_checksums.txt", binaryName, s.version)
	if err := os.WriteFile(filepath.Join(out, checksums), []byte(sums.String()), 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %d archives, %s, image %s@%s\n", out, len(releasePlatforms), checksums, s.imageRef(), digest)
	return nil
}

// archive writes a tar.gz of the binary with the license, the README and
// the default config, every entry at the commit's time and owned by root.
func (s *source) archive(path, bin string) error {
	members := []struct{ name, src string }{
		{"LICENSE", filepath.Join(s.root, "LICENSE")},
		{"README.md", filepath.Join(s.root, "README.md")},
		{"config.yaml", filepath.Join(s.root, "distribution", "config.yaml")},
		{binaryName, bin},
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, m := range members {
		b, err := os.ReadFile(m.src)
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if m.name == binaryName {
			mode = 0o755
		}
		h := &tar.Header{Name: m.name, Mode: mode, Size: int64(len(b)), ModTime: s.created.Truncate(time.Second), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
