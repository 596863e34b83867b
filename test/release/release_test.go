// Package release tests what a release ships, through the Makefile
// targets a maintainer and the release workflow run: `make image`,
// `make push`, `make release`.
package release

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"crypto/x509"
	"debug/buildinfo"
	"debug/elf"
	"debug/macho"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubestitch/kubestitch/internal/buildermanifest"
	"github.com/kubestitch/kubestitch/internal/ociimage"
	"github.com/kubestitch/kubestitch/internal/sbom"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/shippedimage"
)

// runMake runs a Makefile target of the checkout with vars, and returns its
// output.
func runMake(t *testing.T, target string, vars ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the distribution for several platforms; `make test` runs it")
	}
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	cmd := exec.Command("make", append([]string{"-s", "-C", root, target}, vars...)...)
	cmd.Env = makeEnv()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "make %s %v:\n%s", target, vars, out)
	return string(out)
}

// makeEnv is the environment without what an outer make (make test
// VERSION=...) would pass down to the target under test.
func makeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VERSION", "DIST", "IMAGE", "LAYOUT", "SOURCE_DATE_EPOCH":
		default:
			env = append(env, kv)
		}
	}
	return env
}

// atCommit is the revision and time the image's labels must say: HEAD's,
// read before the builds; the test fails plainly if HEAD or the tree
// changed while it ran (a commit mid-run, not a wrong label).
func atCommit(t *testing.T) (string, time.Time) {
	t.Helper()
	rev, created := commit(t)
	t.Cleanup(func() {
		if now, _ := commit(t); now != rev {
			t.Errorf("the checkout moved from %s to %s while the test ran: its label checks are void, run it again", rev, now)
		}
	})
	return rev, created
}

// commit is HEAD's hash ("-dirty" with changes) and time.
func commit(t *testing.T) (string, time.Time) {
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		require.NoError(t, err, "git %v", args)
		return strings.TrimSpace(string(out))
	}
	sec, err := strconv.ParseInt(git("log", "-1", "--format=%ct"), 10, 64)
	require.NoError(t, err)
	rev := git("rev-parse", "HEAD")
	if git("status", "--porcelain") != "" {
		rev += "-dirty"
	}
	return rev, time.Unix(sec, 0).UTC()
}

// builderVersion is dist.version of builder-config.yaml: the one place the
// version lives.
func builderVersion(t *testing.T) string {
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	dist, err := buildermanifest.Read(root)
	require.NoError(t, err)
	return dist.Version
}

// TestMakeImageIsReproducibleAndAsShipped: `make image` writes an OCI
// layout with a linux/amd64 and a linux/arm64 image, each the static
// binary of its platform run as 65532 with the labels a registry shows;
// a second run from a clean dist/ gives the same index digest.
func TestMakeImageIsReproducibleAndAsShipped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the distribution for two platforms; `make test` runs it")
	}
	rev, created := atCommit(t)
	first, second := t.TempDir(), t.TempDir()
	start := time.Now()
	runMake(t, "image", "DIST="+first)
	t.Logf("make image: %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	runMake(t, "image", "DIST="+second)
	t.Logf("make image again: %s", time.Since(start).Round(time.Millisecond))

	idx, err := ociimage.ReadLayout(filepath.Join(first, "oci"))
	require.NoError(t, err)
	again, err := ociimage.ReadLayout(filepath.Join(second, "oci"))
	require.NoError(t, err)
	d1, err := idx.Digest()
	require.NoError(t, err)
	d2, err := again.Digest()
	require.NoError(t, err)
	assert.Equal(t, d1, d2, "the same commit gives the same index digest")
	t.Logf("index digest, two runs: %s, %s", d1, d2)

	version := builderVersion(t)
	checkImage(t, idx, version, rev, created)
	// The layout's name is the shipped reference: what deploy/ names.
	b, err := os.ReadFile(filepath.Join(first, "oci", "index.json"))
	require.NoError(t, err)
	var outer v1.IndexManifest
	require.NoError(t, json.Unmarshal(b, &outer))
	require.Len(t, outer.Manifests, 1)
	assert.Equal(t, version, outer.Manifests[0].Annotations[ociimage.RefNameAnnotation])
	assert.Equal(t, "ghcr.io/kubestitch/otelcol-kubestitch:"+version, outer.Manifests[0].Annotations[ociimage.ContainerdNameAnnotation])
	for _, arch := range []string{"amd64", "arm64"} {
		checkSBOM(t, filepath.Join(first, "otelcol-kubestitch_"+version+"_linux_"+arch+".sbom.cdx.json"), version, "")
	}
}

// checkImage asserts what a user of the image relies on, for each
// platform: static binary of that platform, user 65532, the entrypoint
// and default config, CA certificates, passwd, /tmp, and the labels.
func checkImage(t *testing.T, idx v1.ImageIndex, version, rev string, created time.Time) {
	t.Helper()
	m, err := idx.IndexManifest()
	require.NoError(t, err)
	var platforms []string
	for _, d := range m.Manifests {
		require.NotNil(t, d.Platform)
		platforms = append(platforms, d.Platform.String())
		img, err := idx.Image(d.Digest)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, "65532:65532", cf.Config.User, "%s: runs as nonroot", d.Platform)
		assert.Equal(t, []string{"/otelcol-kubestitch"}, cf.Config.Entrypoint)
		assert.Equal(t, []string{"--config=/etc/otelcol-kubestitch/config.yaml"}, cf.Config.Cmd)
		assert.Equal(t, created, cf.Created.Time.UTC(), "created is the commit's time, not the clock")
		assert.Equal(t, map[string]string{
			"org.opencontainers.image.title":       "otelcol-kubestitch",
			"org.opencontainers.image.description": "Kubestitch, an OpenTelemetry Collector distribution that shows Kubernetes operations as whole traces",
			"org.opencontainers.image.source":      "https://github.com/kubestitch/kubestitch",
			"org.opencontainers.image.url":         "https://github.com/kubestitch/kubestitch",
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.revision":    rev,
			"org.opencontainers.image.licenses":    "Apache-2.0",
			"org.opencontainers.image.created":     created.Format(time.RFC3339),
		}, cf.Config.Labels)
		files := imageFiles(t, img)
		bin := files["otelcol-kubestitch"]
		require.NotNil(t, bin, "%s: /otelcol-kubestitch", d.Platform)
		assert.EqualValues(t, 0o755, bin.mode)
		checkBinary(t, bin.data, "linux", d.Platform.Architecture)
		require.Contains(t, files, "etc/otelcol-kubestitch/config.yaml")
		assert.Contains(t, string(files["etc/passwd"].data), "nonroot:x:65532:65532:")
		assert.Contains(t, string(files["etc/group"].data), "nonroot:x:65532:")
		assert.EqualValues(t, 0o1777, files["tmp"].mode, "/tmp: world-writable, sticky")
		assert.Contains(t, string(files["usr/share/doc/kubestitch/LICENSE"].data), "Apache License")
		roots := x509.NewCertPool()
		require.True(t, roots.AppendCertsFromPEM(files["etc/ssl/certs/ca-certificates.crt"].data), "CA certificates")
		assert.Greater(t, len(pemBlocks(files["etc/ssl/certs/ca-certificates.crt"].data)), 100, "the Mozilla roots")
		size, err := img.Size()
		require.NoError(t, err)
		var layers int64
		ls, err := img.Layers()
		require.NoError(t, err)
		for _, l := range ls {
			n, err := l.Size()
			require.NoError(t, err)
			layers += n
		}
		t.Logf("%s: %d layers, %.1f MiB compressed, manifest %d B", d.Platform, len(ls), float64(layers)/(1<<20), size)
	}
	assert.ElementsMatch(t, []string{"linux/amd64", "linux/arm64"}, platforms)
}

type file struct {
	mode int64
	data []byte
}

// imageFiles is the image's flattened file system.
func imageFiles(t *testing.T, img v1.Image) map[string]*file {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	return tarFiles(t, rc)
}

// tarFiles is every entry of a tar stream by name (a directory's without
// its trailing slash).
func tarFiles(t *testing.T, r io.Reader) map[string]*file {
	t.Helper()
	out := map[string]*file{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		out[strings.TrimSuffix(h.Name, "/")] = &file{mode: h.Mode, data: b}
	}
}

// checkBinary asserts a static Go binary of goos/goarch, built as the
// Makefile builds it.
func checkBinary(t *testing.T, b []byte, goos, goarch string) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "bin")
	require.NoError(t, os.WriteFile(tmp, b, 0o755))
	switch goos {
	case "linux":
		f, err := elf.Open(tmp)
		require.NoError(t, err)
		defer f.Close()
		assert.Equal(t, map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[goarch], f.Machine)
		for _, p := range f.Progs {
			assert.NotEqual(t, elf.PT_INTERP, p.Type, "static: no dynamic loader")
		}
	case "darwin":
		f, err := macho.Open(tmp)
		require.NoError(t, err)
		defer f.Close()
		assert.Equal(t, map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[goarch], f.Cpu)
	}
	info, err := buildinfo.ReadFile(tmp)
	require.NoError(t, err)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	assert.Equal(t, goos, settings["GOOS"])
	assert.Equal(t, goarch, settings["GOARCH"])
	assert.Equal(t, "0", settings["CGO_ENABLED"])
	assert.Equal(t, "true", settings["-trimpath"])
}

// checkSBOM asserts a CycloneDX BOM naming every module linked into its
// binary (bin, when given) at the version in its build info.
func checkSBOM(t *testing.T, path, version, bin string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var bom sbom.BOM
	require.NoError(t, json.Unmarshal(b, &bom))
	assert.Equal(t, "CycloneDX", bom.BOMFormat)
	assert.Equal(t, "1.5", bom.SpecVersion)
	assert.Equal(t, version, bom.Metadata.Component.Version)
	assert.Equal(t, "pkg:golang/github.com/kubestitch/kubestitch@v"+version+"?type=module", bom.Metadata.Component.PURL)
	assert.Equal(t, "Apache-2.0", bom.Metadata.Component.Licenses[0].License.ID)
	mods := map[string]string{}
	for _, c := range bom.Components {
		mods[c.Name] = c.Version
		assert.Equal(t, "pkg:golang/"+c.Name+"@"+c.Version+"?type=module", c.PURL)
	}
	assert.Contains(t, mods, "go.opentelemetry.io/collector/otelcol")
	assert.Contains(t, mods, "k8s.io/client-go")
	if bin == "" {
		return
	}
	info, err := buildinfo.ReadFile(bin)
	require.NoError(t, err)
	for _, d := range info.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		assert.Equal(t, d.Version, mods[d.Path], "module %s", d.Path)
	}
	assert.Len(t, bom.Components, len(info.Deps))
	sum := sha256.Sum256(mustRead(t, bin))
	assert.Equal(t, hex.EncodeToString(sum[:]), bom.Metadata.Component.Hashes[0].Content, "the BOM names its binary by hash")
}

// TestMakeRelease: `make release VERSION=0.0.0-test` writes the archives
// for linux and darwin on amd64 and arm64 (each the binary of its
// platform saying that version, the license, README, default config),
// checksums that sha256sum -c accepts, an SBOM per binary, and the image
// layout of that version.
func TestMakeRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the distribution for four platforms; `make test` runs it")
	}
	rev, created := atCommit(t)
	dist := t.TempDir()
	start := time.Now()
	runMake(t, "release", "VERSION=0.0.0-test", "DIST="+dist)
	t.Logf("make release: %s", time.Since(start).Round(time.Millisecond))
	out := filepath.Join(dist, "release")

	// Checksums: every file, and sha256sum agrees.
	sums := map[string]string{}
	f, err := os.Open(filepath.Join(out, "otelcol-kubestitch_0.0.0-test_checksums.txt"))
	require.NoError(t, err)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		require.True(t, ok, "checksum line %q", sc.Text())
		sums[name] = sum
	}
	f.Close()
	cmd := exec.Command("sha256sum", "-c", "otelcol-kubestitch_0.0.0-test_checksums.txt")
	cmd.Dir = out
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "sha256sum -c:\n%s", b)

	for _, p := range []string{"linux_amd64", "linux_arm64", "darwin_amd64", "darwin_arm64"} {
		archive := "otelcol-kubestitch_0.0.0-test_" + p + ".tar.gz"
		require.Contains(t, sums, archive)
		require.Contains(t, sums, archive+".sbom.cdx.json")
		members := readArchive(t, filepath.Join(out, archive))
		assert.ElementsMatch(t, []string{"LICENSE", "README.md", "config.yaml", "otelcol-kubestitch"}, keys(members), archive)
		goos, goarch, _ := strings.Cut(p, "_")
		checkBinary(t, members["otelcol-kubestitch"].data, goos, goarch)
		bin := filepath.Join(t.TempDir(), "otelcol-kubestitch")
		require.NoError(t, os.WriteFile(bin, members["otelcol-kubestitch"].data, 0o755))
		checkSBOM(t, filepath.Join(out, archive+".sbom.cdx.json"), "0.0.0-test", bin)
		if goos == runtime.GOOS && goarch == runtime.GOARCH {
			v, err := exec.Command(bin, "--version").CombinedOutput()
			require.NoError(t, err, "%s", v)
			assert.Equal(t, "otelcol-kubestitch version 0.0.0-test", strings.TrimSpace(string(v)), "the binary says the release's version")
		}
		st, err := os.Stat(filepath.Join(out, archive))
		require.NoError(t, err)
		t.Logf("%s: %.1f MiB", archive, float64(st.Size())/(1<<20))
	}
	idx, err := ociimage.ReadLayout(filepath.Join(out, "oci"))
	require.NoError(t, err)
	checkImage(t, idx, "0.0.0-test", rev, created)
}

// TestMakePushThenPullByDigest: `make push IMAGE=...` pushes the layout
// to a registry (one served here on 127.0.0.1) and prints the digest; the
// image pulled back by that digest runs its entrypoint as 65532.
func TestMakePushThenPullByDigest(t *testing.T) {
	dist := t.TempDir()
	runMake(t, "image", "DIST="+dist)
	ref := shippedimage.Registry(t) + "/kubestitch/otelcol-kubestitch:" + builderVersion(t)
	out := runMake(t, "push", "DIST="+dist, "IMAGE="+ref)
	m := regexp.MustCompile(`(?m)^(\S+)@(sha256:[0-9a-f]{64})$`).FindStringSubmatch(out)
	require.NotNil(t, m, "make push prints ref@digest, got:\n%s", out)
	assert.Equal(t, ref, m[1])
	idx, err := ociimage.ReadLayout(filepath.Join(dist, "oci"))
	require.NoError(t, err)
	want, err := idx.Digest()
	require.NoError(t, err)
	assert.Equal(t, want.String(), m[2], "the digest printed is the layout's")

	repo, _, _ := strings.Cut(ref, ":"+builderVersion(t))
	// Each platform's manifest, for attestations (the release workflow).
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		assert.Regexp(t, `(?m)^`+p+` `+regexp.QuoteMeta(repo)+`@sha256:[0-9a-f]{64}$`, out)
	}
	if os.Getuid() != 0 {
		t.Skip("running the image's entrypoint as 65532 needs root (chroot)")
	}
	img := shippedimage.Pull(t, repo+"@"+m[2])
	chroot := func(args ...string) *exec.Cmd {
		return exec.Command("chroot", append([]string{"--userspec=" + img.User, img.RootFS}, append(img.Entrypoint, args...)...)...)
	}
	cmd := chroot("--version")
	v, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", v)
	assert.Equal(t, "otelcol-kubestitch version "+builderVersion(t), strings.TrimSpace(string(v)))
	cmd = chroot("validate", img.Cmd[0])
	cmd.Env = []string{"KUBECONFIG="}
	v, err = cmd.CombinedOutput()
	require.NoError(t, err, "the default config in the image is valid:\n%s", v)
}

func readArchive(t *testing.T, path string) map[string]*file {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	return tarFiles(t, zr)
}

func keys(m map[string]*file) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func pemBlocks(b []byte) []*pem.Block {
	var out []*pem.Block
	for {
		var p *pem.Block
		p, b = pem.Decode(b)
		if p == nil {
			return out
		}
		out = append(out, p)
	}
}

func mustRead(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
