package k8swatchreceiver

import (
	"strings"
	"unicode/utf8"
)

// sanitize makes every string of a view valid UTF-8: OTLP's protobuf
// encoding rejects a span with an invalid string, and one bad object must
// not cost the batch it travels in.
func sanitize(v *objectView) {
	for _, s := range []*string{&v.kind, &v.namespace, &v.name, &v.manager, &v.nodeAgent, &v.ownerKind, &v.traceparent} {
		if !utf8.ValidString(*s) {
			*s = strings.ToValidUTF8(*s, "\uFFFD")
		}
	}
	if v.pod != nil {
		for i := range v.pod.containers {
			c := &v.pod.containers[i]
			if !utf8.ValidString(c.name) || !utf8.ValidString(c.image) {
				c.name, c.image = strings.ToValidUTF8(c.name, "\uFFFD"), strings.ToValidUTF8(c.image, "\uFFFD")
			}
		}
	}
}
