package k8sadmissionreceiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/receiver/k8sadmissionreceiver/internal/metadata"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func newTestReceiver(t *testing.T, mutate func(*Config)) (*admissionReceiver, *componenttest.Telemetry) {
	t.Helper()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(t.Context()) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	cfg := createDefaultConfig().(*Config)
	if mutate != nil {
		mutate(cfg)
	}
	r, err := newAdmissionReceiver(set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	return r, tel
}

func post(r *admissionReceiver, body []byte, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	r.handle(w, req)
	return w
}

// recorded reads a review kube-apiserver sent (testdata, recorded on the
// local control plane) and what a reader of it sees: the request UID and
// the object's UID (oldObject's on DELETE), read here with a plain map.
func recorded(t *testing.T, name string) (body []byte, requestUID, objectUID string) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	var m struct {
		Request struct {
			UID       string         `json:"uid"`
			Operation string         `json:"operation"`
			Object    map[string]any `json:"object"`
			OldObject map[string]any `json:"oldObject"`
		} `json:"request"`
	}
	require.NoError(t, json.Unmarshal(body, &m))
	obj := m.Request.Object
	if m.Request.Operation == "DELETE" {
		obj = m.Request.OldObject
	}
	meta, _ := obj["metadata"].(map[string]any)
	uid, _ := meta["uid"].(string)
	return body, m.Request.UID, uid
}

func spanOf(t *testing.T, r *admissionReceiver) ptrace.Span {
	t.Helper()
	select {
	case rs := <-r.queue:
		td := ptrace.NewTraces()
		appendSpans(td, []reviewSpan{rs})
		require.Equal(t, 1, td.SpanCount())
		return td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	default:
		t.Fatal("no review span queued")
		return ptrace.Span{}
	}
}

func str(s ptrace.Span, k string) string {
	v, _ := s.Attributes().Get(k)
	return v.Str()
}

func TestRecordedReviews(t *testing.T) {
	for _, tc := range []struct {
		file                          string
		op, resource, sub, kind, user string
		ownerKind                     string
		dryRun                        bool
	}{
		// The test bed's admin is not one of Kubernetes' own accounts.
		{"create_deployment.json", "CREATE", "deployments", "", "Deployment", PersonUser, "", false},
		{"create_pod_by_replicaset.json", "CREATE", "pods", "", "Pod", "system:serviceaccount:kube-system:replicaset-controller", "ReplicaSet", false},
		// The scheduler's Binding carries the pod's UID.
		{"binding.json", "CREATE", "pods", "binding", "Binding", "system:kube-scheduler", "", false},
		{"update_pod_status.json", "UPDATE", "pods", "status", "Pod", PersonUser, "ReplicaSet", false},
		{"update_deployment.json", "UPDATE", "deployments", "", "Deployment", PersonUser, "", false},
		{"delete_deployment.json", "DELETE", "deployments", "", "Deployment", PersonUser, "", false},
		{"delete_pod_by_gc.json", "DELETE", "pods", "", "Pod", "system:serviceaccount:kube-system:generic-garbage-collector", "ReplicaSet", false},
		{"dry_run_create.json", "CREATE", "deployments", "", "Deployment", PersonUser, "", true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r, tel := newTestReceiver(t, nil)
			body, reqUID, objUID := recorded(t, tc.file)
			require.NotEmpty(t, objUID)
			w := post(r, body, http.Header{"Traceparent": {traceparent}})

			require.Equal(t, http.StatusOK, w.Code)
			var resp struct {
				APIVersion, Kind string
				Response         struct {
					UID     string `json:"uid"`
					Allowed bool   `json:"allowed"`
					Patch   []byte `json:"patch"`
				} `json:"response"`
			}
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &resp))
			assert.Equal(t, "admission.k8s.io/v1", resp.APIVersion)
			assert.Equal(t, "AdmissionReview", resp.Kind)
			assert.Equal(t, reqUID, resp.Response.UID, "the answer names the request")
			assert.True(t, resp.Response.Allowed, "always allowed")
			assert.Empty(t, resp.Response.Patch, "never mutates")

			s := spanOf(t, r)
			assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", s.TraceID().String(), "in the request's own trace")
			assert.Equal(t, "00f067aa0ba902b7", s.ParentSpanID().String(), "under the apiserver's webhook call")
			assert.Equal(t, fragment.AdmissionSpanID(reqUID), s.SpanID())
			assert.Equal(t, ptrace.SpanKindServer, s.Kind())
			assert.Equal(t, objUID, str(s, fragment.KeyUID))
			assert.Equal(t, tc.op, str(s, fragment.KeyAdmissionOperation))
			assert.Equal(t, tc.resource, str(s, fragment.KeyAdmissionResource))
			assert.Equal(t, tc.sub, str(s, fragment.KeyAdmissionSubresource))
			assert.Equal(t, tc.kind, str(s, fragment.KeyKind))
			assert.Equal(t, tc.user, str(s, fragment.KeyAdmissionUser))
			assert.Equal(t, "default", str(s, fragment.KeyNamespace))
			assert.NotEmpty(t, str(s, fragment.KeyName))
			assert.Equal(t, tc.ownerKind, str(s, fragment.KeyOwnerKind))
			if tc.ownerKind != "" {
				assert.NotEmpty(t, str(s, fragment.KeyOwnerUID))
			}
			dry, _ := s.Attributes().Get(fragment.KeyAdmissionDryRun)
			assert.Equal(t, tc.dryRun, dry.Bool())
			assert.LessOrEqual(t, s.Attributes().Len(), 16, "a handful of keys, no object content")
			_, err := tel.GetMetric("otelcol_k8sadmission_reviews")
			require.NoError(t, err)
		})
	}
}

// TestNoObjectContentInSpans: the recorded Deployment create carries a
// container env value and the admin's groups; none reach the span.
func TestNoObjectContentInSpans(t *testing.T) {
	r, _ := newTestReceiver(t, nil)
	body, _, _ := recorded(t, "create_deployment.json")
	require.Contains(t, string(body), "s3cr3t", "the recorded body has the env value")
	require.Contains(t, string(body), "system:masters", "and the user's groups")
	post(r, body, nil)
	s := spanOf(t, r)
	var all strings.Builder
	s.Attributes().Range(func(k string, v pcommon.Value) bool {
		all.WriteString(k + "=" + v.AsString() + "\n")
		return true
	})
	for _, secret := range []string{"s3cr3t", "SECRET_TOKEN", "system:masters", "registry.example", "managedFields"} {
		assert.NotContains(t, all.String(), secret)
	}
	assert.True(t, s.ParentSpanID().IsEmpty(), "no traceparent: a root")
	assert.Equal(t, fragment.AdmissionTraceID(str(s, fragment.KeyAdmissionRequestUID)), s.TraceID())
}

func TestBadRequestsAre400AndCounted(t *testing.T) {
	big, _, _ := recorded(t, "create_deployment.json")
	r, tel := newTestReceiver(t, func(c *Config) { c.ServerConfig.MaxRequestBodySize = 1024 })
	require.Greater(t, len(big), 1024)
	for _, tc := range []struct {
		name, file string
		body       []byte
		method     string
		want       string
	}{
		{name: "not json", file: "garbage_not_json.txt", want: "not an AdmissionReview in JSON"},
		{name: "wrong version", file: "garbage_wrong_version.json", want: "want admission.k8s.io/v1 AdmissionReview"},
		{name: "no request", file: "garbage_no_request.json", want: "without a request"},
		{name: "too large", body: big, want: "larger than max_request_body_size (1024 bytes)"},
		{name: "GET", body: []byte("{}"), method: http.MethodGet, want: "an admission review is a POST"},
		{name: "empty", body: []byte{}, want: "not an AdmissionReview"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.file != "" {
				var err error
				body, err = os.ReadFile(filepath.Join("testdata", tc.file))
				require.NoError(t, err)
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/validate", bytes.NewReader(body))
			w := httptest.NewRecorder()
			assert.NotPanics(t, func() { r.handle(w, req) })
			assert.Equal(t, http.StatusBadRequest, w.Code)
			assert.Contains(t, w.Body.String(), tc.want)
		})
	}
	assert.Empty(t, r.queue, "no span for a bad request")
	_, err := tel.GetMetric("otelcol_k8sadmission_reviews_bad")
	require.NoError(t, err, "bad requests are counted")
}

// TestFullQueueDropsNotBlocks: with the pipeline backed up (nothing
// drains the queue), reviews are still answered at once.
func TestFullQueueDropsNotBlocks(t *testing.T) {
	r, tel := newTestReceiver(t, func(c *Config) { c.QueueSize = 1 })
	body, _, _ := recorded(t, "update_pod_status.json")
	for range 5 {
		done := make(chan int)
		go func() { done <- post(r, body, nil).Code }()
		select {
		case code := <-done:
			assert.Equal(t, http.StatusOK, code)
		case <-time.After(5 * time.Second):
			t.Fatal("a review waited for the pipeline")
		}
	}
	assert.Len(t, r.queue, 1)
	_, err := tel.GetMetric("otelcol_k8sadmission_spans_dropped")
	require.NoError(t, err, "the dropped spans are counted")
}

// TestServesTLSAndReloadsCertificate runs the receiver as the collector
// would: HTTPS on a port, spans to the next consumer; a rotated
// certificate is served without a restart.
func TestServesTLSAndReloadsCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeCert(t, certFile, keyFile, 1)
	r, sink := startHTTPS(t, configtls.ServerConfig{Config: configtls.Config{CertFile: certFile, KeyFile: keyFile, ReloadInterval: 100 * time.Millisecond}})

	served := func() int64 {
		conn, err := tls.Dial("tcp", r.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test reads the served certificate
		require.NoError(t, err)
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	assert.Equal(t, first, served())

	body, _, _ := recorded(t, "create_deployment.json")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed test certificate
	resp, err := hc.Post("https://"+r.addr+"/validate", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool { return sink.SpanCount() == 1 }, 5*time.Second, 10*time.Millisecond, "the span reaches the pipeline")
	hc.CloseIdleConnections()

	second := writeCert(t, certFile, keyFile, 2)
	require.Eventually(t, func() bool { return served() == second }, 5*time.Second, 50*time.Millisecond, "the rotated certificate is served")
}

// TestCompressedReviewsRefused (trust finding 1): kube-apiserver never
// compresses a review, so a gzip body (4 KiB on the wire can inflate to
// max_request_body_size) is answered 400 before any of it is read.
func TestCompressedReviewsRefused(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certFile, keyFile, 1)
	r, sink := startHTTPS(t, configtls.ServerConfig{Config: configtls.Config{CertFile: certFile, KeyFile: keyFile}})
	body, _, _ := recorded(t, "create_deployment.json")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write(body)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed test certificate
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, "https://"+r.addr+"/validate", bytes.NewReader(gz.Bytes()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Zero(t, sink.SpanCount())
}

// startHTTPS runs the receiver as the collector would, on a loopback
// port with tlsCfg, its spans going to the returned sink.
func startHTTPS(t *testing.T, tlsCfg configtls.ServerConfig) (*admissionReceiver, *consumertest.TracesSink) {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.ServerConfig.NetAddr.Endpoint = "127.0.0.1:0"
	cfg.ServerConfig.TLS = configoptional.Some(tlsCfg)
	// The tests of other concerns call without a client certificate.
	cfg.AllowAnyClient = tlsCfg.ClientCAFile == ""
	require.NoError(t, cfg.Validate())
	sink := &consumertest.TracesSink{}
	r, err := newAdmissionReceiver(receivertest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(t.Context(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	return r, sink
}

func writeCert(t *testing.T, certFile, keyFile string, serial int64) int64 {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "k8sadmission-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return serial
}

// TestUserSettingOnRecordedReview: the user setting decides what of
// kube-apiserver's userInfo.username reaches the span.
func TestUserSettingOnRecordedReview(t *testing.T) {
	body, _, _ := recorded(t, "create_deployment.json")
	for setting, want := range map[string]string{UserName: "kubestitch-admin", UserHash: userAttribute(UserHash, "kubestitch-admin"), UserNone: ""} {
		r, _ := newTestReceiver(t, func(c *Config) { c.User = setting })
		require.Equal(t, http.StatusOK, post(r, body, nil).Code)
		s := spanOf(t, r)
		_, present := s.Attributes().Get(fragment.KeyAdmissionUser)
		assert.Equal(t, want, str(s, fragment.KeyAdmissionUser), setting)
		assert.Equal(t, want != "", present, setting)
	}
}

// TestDefaultUserKeepsAccountsOnly (trust finding 12): as shipped, a
// person's name (an e-mail address under OIDC) never reaches a span; the
// names of Kubernetes' own accounts (a controller's ServiceAccount, a
// node, a component) do: they say which controller wrote.
func TestDefaultUserKeepsAccountsOnly(t *testing.T) {
	body, _, _ := recorded(t, "create_deployment.json")
	var review map[string]any
	require.NoError(t, json.Unmarshal(body, &review))
	for user, want := range map[string]string{
		"alice@example.com": PersonUser,
		"oidc:bob":          PersonUser,
		"system:serviceaccount:flux-system:kustomize-controller": "system:serviceaccount:flux-system:kustomize-controller",
		"system:kube-controller-manager":                         "system:kube-controller-manager",
	} {
		r, _ := newTestReceiver(t, nil)
		review["request"].(map[string]any)["userInfo"] = map[string]any{"username": user}
		b, err := json.Marshal(review)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, post(r, b, nil).Code)
		assert.Equal(t, want, str(spanOf(t, r), fragment.KeyAdmissionUser), user)
	}
}

// TestSlowBodyIsCutOff: a client that sends its headers and then its body
// a byte at a time must not hold a goroutine (and up to 4 MiB) forever:
// read_timeout cuts it off.
func TestSlowBodyIsCutOff(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certFile, keyFile, 1)
	cfg := createDefaultConfig().(*Config)
	assert.Positive(t, cfg.ServerConfig.ReadTimeout, "a read timeout by default")
	cfg.ServerConfig.ReadTimeout = time.Second
	cfg.ServerConfig.NetAddr.Endpoint = "127.0.0.1:0"
	cfg.ServerConfig.TLS = configoptional.Some(configtls.ServerConfig{Config: configtls.Config{CertFile: certFile, KeyFile: keyFile}})
	cfg.AllowAnyClient = true
	require.NoError(t, cfg.Validate())
	r, err := newAdmissionReceiver(receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, r.Start(t.Context(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })

	conn, err := tls.Dial("tcp", r.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test certificate
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4194304\r\n\r\n{"))
	require.NoError(t, err)
	start := time.Now()
	cut := make(chan time.Duration, 1)
	go func() {
		buf := make([]byte, 1024)
		for {
			if _, err := conn.Write([]byte(" ")); err != nil {
				cut <- time.Since(start)
				return
			}
			_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, err := conn.Read(buf); n > 0 || (err != nil && !isTimeout(err)) {
				cut <- time.Since(start) // answered (408/400) or closed
				return
			}
		}
	}()
	select {
	case d := <-cut:
		t.Logf("the slow client was cut off after %s", d.Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("a client sending its body slowly still holds the connection after 10 s (read_timeout 1 s)")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestConcurrentReviewsAreBounded: beyond max_concurrent_reviews a review
// is answered 429 at once and counted, not read.
func TestConcurrentReviewsAreBounded(t *testing.T) {
	r, tel := newTestReceiver(t, func(c *Config) { c.MaxConcurrentReviews = 1 })
	r.inFlight <- struct{}{} // one review being read
	body, _, _ := recorded(t, "create_deployment.json")
	assert.Equal(t, http.StatusTooManyRequests, post(r, body, nil).Code)
	<-r.inFlight
	assert.Equal(t, http.StatusOK, post(r, body, nil).Code)
	_, err := tel.GetMetric("otelcol_k8sadmission_reviews_bad")
	require.NoError(t, err)
}

// TestForgedHugeReviewsHoldLittle: a review's strings go into a queued
// span, and the queue is bounded by count (queue_size, 10,000). Reviews
// whose name, namespace, user and owner are megabytes long (a forged
// client, within max_request_body_size) must not each keep megabytes
// alive while they wait: 100 of them, with nothing draining the queue,
// may hold a few KiB each, not 4 MiB (10,000 would be 40 GiB).
func TestForgedHugeReviewsHoldLittle(t *testing.T) {
	r, _ := newTestReceiver(t, nil)
	body, _, _ := recorded(t, "create_deployment.json")
	var review map[string]any
	require.NoError(t, json.Unmarshal(body, &review))
	huge := strings.Repeat("x", 1<<20-16<<10) // four of them: a 4 MiB body
	req := review["request"].(map[string]any)
	req["name"] = huge
	req["namespace"] = huge
	req["userInfo"] = map[string]any{"username": huge}
	req["kind"] = map[string]any{"group": "apps", "version": "v1", "kind": huge}
	const reviews = 100
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range reviews {
		req["uid"] = fmt.Sprintf("forged-%d", i)
		b, err := json.Marshal(review)
		require.NoError(t, err)
		w := post(r, b, nil)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	}
	require.Len(t, r.queue, reviews, "all wait in the queue")
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d queued reviews of 4 MiB hold %d KiB", reviews, held>>10)
	assert.Less(t, held, int64(reviews*64<<10), "each queued review holds less than 64 KiB")
	s := spanOf(t, r)
	assert.LessOrEqual(t, len(str(s, fragment.KeyName)), maxReviewString)
	assert.LessOrEqual(t, len(str(s, fragment.KeyAdmissionUser)), maxReviewString)
}

// TestManyOwnerReferencesAllocateLittle (trust finding 1): a review of 4
// MiB whose object carries ~1.4 million empty owner references, the
// controller last, allocates a small multiple of its body, not the 632
// MiB of decoding the references whole, and still names the controller.
func TestManyOwnerReferencesAllocateLittle(t *testing.T) {
	body, _, _ := recorded(t, "create_deployment.json")
	var review map[string]any
	require.NoError(t, json.Unmarshal(body, &review))
	const limit = 4 << 20
	refs := strings.Repeat("{},", (limit-64<<10)/3) + `{"kind":"Deployment","name":"web","uid":"u-1","controller":true}`
	obj := review["request"].(map[string]any)["object"].(map[string]any)
	obj["metadata"].(map[string]any)["ownerReferences"] = json.RawMessage("[" + refs + "]")
	b, err := json.Marshal(review)
	require.NoError(t, err)
	require.Less(t, len(b), limit)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rv, err := readReview(httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b)))
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d KiB review with %d owner references allocated %d KiB", len(b)>>10, strings.Count(refs, "{"), allocated>>10)
	// Within a small multiple of the body (9.7 MiB measured; more under
	// -race, and TotalAlloc counts other goroutines too): decoded whole,
	// the references took 648 MiB.
	assert.Less(t, allocated, uint64(8*len(b)), "allocation within 8x the body")
	assert.Equal(t, []string{"Deployment", "web", "u-1"}, []string{rv.ownerKind, rv.ownerName, rv.ownerUID})
}

// TestClientCertificateIsVerified: with tls.client_ca_file, only a client
// presenting a certificate signed by that CA (kube-apiserver, with the
// kubeconfig its --admission-control-config-file names for this webhook)
// gets through; any other fails the TLS handshake, before a byte of a
// review is read.
func TestClientCertificateIsVerified(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certFile, keyFile, 1)
	caFile := filepath.Join(dir, "client-ca.crt")
	clientCert := writeClientCA(t, caFile)
	r, sink := startHTTPS(t, configtls.ServerConfig{Config: configtls.Config{CertFile: certFile, KeyFile: keyFile}, ClientCAFile: caFile})
	body, _, _ := recorded(t, "create_deployment.json")

	postWith := func(certs []tls.Certificate) (*http.Response, error) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: certs}}} //nolint:gosec // self-signed test server
		defer hc.CloseIdleConnections()
		return hc.Post("https://"+r.addr+"/validate", "application/json", bytes.NewReader(body))
	}
	_, err := postWith(nil)
	// With TLS 1.3 the server's refusal comes after the client's side of
	// the handshake: the client sees the alert ("certificate required") or,
	// writing its body first, the reset.
	require.Error(t, err, "no client certificate: the handshake fails")
	assert.Zero(t, sink.SpanCount(), "and nothing of the review was read")

	resp, err := postWith([]tls.Certificate{clientCert})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool { return sink.SpanCount() == 1 }, 5*time.Second, 10*time.Millisecond, "only the verified client's review became a span")
}

// writeClientCA writes a CA certificate to caFile and returns a client
// certificate it signed, as kube-apiserver's would be.
func writeClientCA(t *testing.T, caFile string) tls.Certificate {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(10), Subject: pkix.Name{CommonName: "kubestitch-webhook-client-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(11), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
