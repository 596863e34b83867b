// Package sbom writes a CycloneDX software bill of materials of a Go
// binary: the modules linked into it, as its build info records them
// (what `go version -m` prints), so the SBOM describes the artifact, not
// the go.mod it came from.
package sbom

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// SpecVersion is the CycloneDX version written.
const SpecVersion = "1.5"

// BOM is the subset of a CycloneDX BOM written here.
type BOM struct {
	BOMFormat    string       `json:"bomFormat"`
	SpecVersion  string       `json:"specVersion"`
	SerialNumber string       `json:"serialNumber"`
	Version      int          `json:"version"`
	Metadata     Metadata     `json:"metadata"`
	Components   []Component  `json:"components"`
	Dependencies []Dependency `json:"dependencies"`
}

type Metadata struct {
	Timestamp  string     `json:"timestamp"`
	Tools      Tools      `json:"tools"`
	Component  Component  `json:"component"`
	Properties []Property `json:"properties,omitempty"`
}

type Tools struct {
	Components []Component `json:"components"`
}

type Component struct {
	Type     string    `json:"type"`
	BOMRef   string    `json:"bom-ref,omitempty"`
	Name     string    `json:"name"`
	Version  string    `json:"version,omitempty"`
	PURL     string    `json:"purl,omitempty"`
	Hashes   []Hash    `json:"hashes,omitempty"`
	Licenses []License `json:"licenses,omitempty"`
}

type Hash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

type License struct {
	License struct {
		ID string `json:"id"`
	} `json:"license"`
}

type Property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type Dependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn,omitempty"`
}

// Describe is the BOM of the Go binary at path, released as version
// under license (an SPDX id) at the time created.
func Describe(path, version, license string, created time.Time) (*BOM, error) {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sbom: %s: %w", path, err)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(bin)

	// Go module versions carry their v (pkg:golang/...@v0.1.0).
	main := Component{Type: "application", Name: info.Main.Path, Version: version, PURL: purl(info.Main.Path, "v"+strings.TrimPrefix(version, "v")),
		Hashes: []Hash{{Alg: "SHA-256", Content: hex.EncodeToString(sum[:])}}}
	main.BOMRef = main.PURL
	if license != "" {
		var l License
		l.License.ID = license
		main.Licenses = []License{l}
	}
	// Property names of CycloneDX's cdx:gomod taxonomy (what
	// cyclonedx-gomod writes).
	props := []Property{{Name: "cdx:gomod:toolchain", Value: info.GoVersion}}
	for _, s := range info.Settings {
		switch s.Key {
		case "GOOS", "GOARCH", "CGO_ENABLED":
			props = append(props, Property{Name: "cdx:gomod:build:env:" + s.Key, Value: s.Value})
		case "-trimpath", "-tags", "-ldflags":
			props = append(props, Property{Name: "cdx:gomod:build:flag:" + s.Key, Value: s.Value})
		case "vcs.revision", "vcs.time", "vcs.modified":
			props = append(props, Property{Name: "cdx:gomod:build:" + s.Key, Value: s.Value})
		}
	}

	bom := &BOM{
		BOMFormat: "CycloneDX", SpecVersion: SpecVersion, Version: 1,
		// Derived from the binary, not random: the same binary, the same BOM.
		SerialNumber: "urn:uuid:" + uuidFrom(sum[:]),
		Metadata: Metadata{
			Timestamp:  created.UTC().Format(time.RFC3339),
			Tools:      Tools{Components: []Component{{Type: "application", Name: "kubestitch-release"}}},
			Component:  main,
			Properties: props,
		},
		Components: []Component{},
	}
	root := Dependency{Ref: main.BOMRef}
	for _, d := range info.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		c := Component{Type: "library", Name: d.Path, Version: d.Version, PURL: purl(d.Path, d.Version)}
		c.BOMRef = c.PURL
		// go.sum's h1: hash is a SHA-256 (of the module's file tree),
		// base64: CycloneDX wants hex.
		if h, ok := strings.CutPrefix(d.Sum, "h1:"); ok {
			if raw, err := base64.StdEncoding.DecodeString(h); err == nil {
				c.Hashes = []Hash{{Alg: "SHA-256", Content: hex.EncodeToString(raw)}}
			}
		}
		bom.Components = append(bom.Components, c)
		root.DependsOn = append(root.DependsOn, c.BOMRef)
	}
	bom.Dependencies = []Dependency{root}
	return bom, nil
}

// Write writes the BOM of the binary at bin to out as JSON.
func Write(out, bin, version, license string, created time.Time) error {
	bom, err := Describe(bin, version, license, created)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(bom, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}

func purl(path, version string) string {
	return "pkg:golang/" + path + "@" + version + "?type=module"
}

// uuidFrom is a version 4 style UUID made of the first 16 bytes of h.
func uuidFrom(h []byte) string {
	u := make([]byte, 16)
	copy(u, h)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	x := hex.EncodeToString(u)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
