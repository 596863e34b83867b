package k8sadmissionreceiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// review is what one AdmissionReview says of a write request: who wrote
// which object, how. It holds no object content: the request is decoded
// into these few fields only, so a Secret's data or a container's env is
// never even read into memory as values.
type review struct {
	requestUID  string
	operation   string
	group       string
	version     string
	resource    string
	subresource string
	kind        string
	namespace   string
	name        string
	// uid is the object's metadata.uid (oldObject's on DELETE): set before
	// validating admission on a create; empty for CONNECT options.
	uid       string
	ownerKind string
	ownerName string
	ownerUID  string
	dryRun    bool
	user      string
}

// The parts of admission.k8s.io/v1 AdmissionReview that a review reads.
type wireReview struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Request    *wireRequest `json:"request"`
}

type wireRequest struct {
	UID         string                      `json:"uid"`
	Kind        metav1.GroupVersionKind     `json:"kind"`
	Resource    metav1.GroupVersionResource `json:"resource"`
	SubResource string                      `json:"subResource"`
	Name        string                      `json:"name"`
	Namespace   string                      `json:"namespace"`
	Operation   string                      `json:"operation"`
	UserInfo    struct {
		Username string `json:"username"`
	} `json:"userInfo"`
	Object    *wireObject `json:"object"`
	OldObject *wireObject `json:"oldObject"`
	DryRun    *bool       `json:"dryRun"`
}

type wireObject struct {
	Metadata struct {
		UID             string          `json:"uid"`
		Name            string          `json:"name"`
		Namespace       string          `json:"namespace"`
		OwnerReferences controllerOwner `json:"ownerReferences"`
	} `json:"metadata"`
}

// controllerOwner is the controller among an object's ownerReferences,
// decoded one reference at a time into the same few fields: a forged
// review's millions of references cost CPU in proportion to its bytes,
// never memory (decoded whole, 4 MiB of `{},` made 1.4 million
// OwnerReference structs, 632 MiB).
type controllerOwner struct {
	kind, name, uid string
	found           bool
}

func (c *controllerOwner) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil { // null
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return errors.New("ownerReferences is not an array")
	}
	var ref struct {
		Kind       string `json:"kind"`
		Name       string `json:"name"`
		UID        string `json:"uid"`
		Controller *bool  `json:"controller"`
	}
	for dec.More() {
		ref.Kind, ref.Name, ref.UID, ref.Controller = "", "", "", nil
		if err := dec.Decode(&ref); err != nil {
			return err
		}
		if !c.found && ref.Controller != nil && *ref.Controller {
			c.kind, c.name, c.uid, c.found = ref.Kind, ref.Name, ref.UID, true
		}
	}
	return nil
}

// badReview is a request answered 400; reason is the counter's label.
type badReview struct {
	reason string
	msg    string
}

func (e *badReview) Error() string { return e.msg }

const (
	reasonMethod    = "method"
	reasonTooLarge  = "too_large"
	reasonNotJSON   = "not_json"
	reasonWrongKind = "wrong_kind"
	reasonNoRequest = "no_request"
)

// maxReviewString bounds every string a review puts into its span: a
// queued review must hold bytes, not the megabytes a forged review can
// carry in a name (Kubernetes names are at most 253 bytes).
const maxReviewString = 1024

// readReview decodes one AdmissionReview request body.
func readReview(r *http.Request) (review, error) {
	if r.Method != http.MethodPost {
		return review{}, &badReview{reasonMethod, fmt.Sprintf("method %s: an admission review is a POST", r.Method)}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return review{}, &badReview{reasonTooLarge, fmt.Sprintf("request body larger than max_request_body_size (%d bytes)", tooLarge.Limit)}
		}
		return review{}, &badReview{reasonNotJSON, "reading the request body: " + err.Error()}
	}
	var w wireReview
	if err := json.Unmarshal(body, &w); err != nil {
		return review{}, &badReview{reasonNotJSON, "request body is not an AdmissionReview in JSON: " + err.Error()}
	}
	if w.APIVersion != admissionv1.SchemeGroupVersion.String() || w.Kind != "AdmissionReview" {
		return review{}, &badReview{reasonWrongKind, fmt.Sprintf("apiVersion %q kind %q: want admission.k8s.io/v1 AdmissionReview", w.APIVersion, w.Kind)}
	}
	q := w.Request
	if q == nil || q.UID == "" {
		return review{}, &badReview{reasonNoRequest, "AdmissionReview without a request or a request uid"}
	}
	b := func(s string) string { return fragment.TruncateUTF8(s, maxReviewString) }
	rv := review{
		requestUID:  b(q.UID),
		operation:   b(q.Operation),
		group:       b(q.Resource.Group),
		version:     b(q.Resource.Version),
		resource:    b(q.Resource.Resource),
		subresource: b(q.SubResource),
		kind:        b(q.Kind.Kind),
		namespace:   b(q.Namespace),
		name:        b(q.Name),
		dryRun:      q.DryRun != nil && *q.DryRun,
		user:        b(q.UserInfo.Username),
	}
	obj := q.Object
	if q.Operation == string(admissionv1.Delete) || obj == nil {
		obj = q.OldObject
	}
	if obj != nil {
		m := obj.Metadata
		rv.uid = b(m.UID)
		if rv.name == "" {
			rv.name = b(m.Name)
		}
		if rv.namespace == "" {
			rv.namespace = b(m.Namespace)
		}
		if o := m.OwnerReferences; o.found {
			rv.ownerKind, rv.ownerName, rv.ownerUID = b(o.kind), b(o.name), b(o.uid)
		}
	}
	return rv, nil
}

// allowed is the answer to every review: allowed, unchanged.
func allowed(requestUID string) []byte {
	b, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: &admissionv1.AdmissionResponse{UID: types.UID(requestUID), Allowed: true},
	})
	return b
}
