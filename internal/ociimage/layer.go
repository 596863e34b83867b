package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/pem"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

const caBundlePath = "/etc/ssl/certs/ca-certificates.crt"

// entry is one file or directory of a layer.
type entry struct {
	mode     int64 // permission bits; a directory when data is nil and dir is set
	dir      bool
	uid, gid int
	data     []byte
}

// baseLayer holds what distroless/static gives a static binary: the
// nonroot user, the CA certificates, a world-writable /tmp. The same for
// every platform and version, so registries and nodes share it.
func baseLayer(created time.Time) (v1.Layer, error) {
	return layer(created, map[string]entry{
		"/etc/passwd":   {mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		"/etc/group":    {mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		caBundlePath:    {mode: 0o644, data: caBundle()},
		"/home/nonroot": {mode: 0o700, dir: true, uid: 65532, gid: 65532},
		"/tmp":          {mode: 0o1777, dir: true},
	})
}

// appLayer is the collector: its binary, default config and license.
func appLayer(bin, config, license []byte, created time.Time) (v1.Layer, error) {
	files := map[string]entry{
		Entrypoint:    {mode: 0o755, data: bin},
		DefaultConfig: {mode: 0o644, data: config},
	}
	if license != nil {
		files["/usr/share/doc/kubestitch/LICENSE"] = entry{mode: 0o644, data: license}
	}
	return layer(created, files)
}

// caBundle is the Mozilla (NSS) roots that golang.org/x/crypto ships, as
// PEM: pinned by go.sum, so the same on every build machine. Roots with a
// distrust-after constraint are left out: a PEM file cannot carry the
// constraint, and without it they would be trusted past their date.
func caBundle() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}

// layer writes files (and their parent directories) as one gzip'd tar in
// path order, every time set to created, and returns it as an OCI layer.
func layer(created time.Time, files map[string]entry) (v1.Layer, error) {
	all := map[string]entry{}
	for p, e := range files {
		all[p] = e
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = entry{mode: 0o755, dir: true}
			}
		}
	}
	names := make([]string, 0, len(all))
	for p := range all {
		names = append(names, p)
	}
	sort.Strings(names)

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, p := range names {
		e := all[p]
		h := &tar.Header{
			Name: strings.TrimPrefix(p, "/"), Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: created, Format: tar.FormatPAX,
		}
		if e.dir {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	// Compressed once, here: no header name or time, so the bytes depend
	// on the content only.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	compressed := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
