package k8sadmissionreceiver

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReview: whatever a caller sends, the handler answers 200 or 400 and
// never panics; a 200 is an allowed review with one span queued.
func FuzzReview(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"DELETE","oldObject":null,"object":{"metadata":{"ownerReferences":[{"controller":true}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":"not an object"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, _ := newTestReceiver(t, func(c *Config) { c.QueueSize = 1; c.ServerConfig.MaxRequestBodySize = 1 << 16 })
		req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
		w := httptest.NewRecorder()
		r.handle(w, req)
		switch w.Code {
		case http.StatusOK:
			if !bytes.Contains(w.Body.Bytes(), []byte(`"allowed":true`)) {
				t.Fatalf("200 without allowed: %s", w.Body.String())
			}
			if len(r.queue) != 1 {
				t.Fatalf("200 with %d spans queued", len(r.queue))
			}
			spanOf(t, r) // the span encodes without panicking
		case http.StatusBadRequest:
			if len(r.queue) != 0 {
				t.Fatal("a span for a bad request")
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
	})
}
