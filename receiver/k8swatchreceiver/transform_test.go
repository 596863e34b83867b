package k8swatchreceiver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestEventsOutsideTheirObjectsNamespaceAreDropped (trust finding 5): an
// Event written in a namespace other than its object's (a tenant who may
// create Events in their own namespace, speaking of a pod in another) is
// counted as a bad object and never reaches the tracker; Kubernetes' own
// Events, in the object's namespace or in default for a cluster-scoped
// object (a Node), do.
func TestEventsOutsideTheirObjectsNamespaceAreDropped(t *testing.T) {
	transform := newTransform(nil, "")
	v1Event := func(ns, objNS, kind string) *eventsv1.Event {
		return &eventsv1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: ns, UID: typesUID("ev-" + ns + kind)},
			Regarding:  corev1.ObjectReference{Kind: kind, Namespace: objNS, Name: "x", UID: "obj-1"},
			Reason:     "FailedScheduling", Type: corev1.EventTypeWarning, ReportingController: "default-scheduler",
			EventTime: metav1.NewMicroTime(t0),
		}
	}
	coreEvent := func(ns, objNS string) *corev1.Event {
		return &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "e", Namespace: ns, UID: typesUID("cev-" + ns)},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: objNS, Name: "x", UID: "obj-1"},
			Reason:         "Pulled", Source: corev1.EventSource{Component: "kubelet"}, LastTimestamp: metav1.NewTime(t0),
		}
	}
	for _, tc := range []struct {
		name string
		obj  any
		kept bool
	}{
		{"pod Event in the pod's namespace", v1Event("victim", "victim", "Pod"), true},
		{"pod Event in another namespace", v1Event("attacker", "victim", "Pod"), false},
		{"Node Event in default", v1Event("default", "", "Node"), true},
		{"Node Event elsewhere", v1Event("attacker", "", "Node"), false},
		{"core/v1 pod Event in the pod's namespace", coreEvent("victim", "victim"), true},
		{"core/v1 pod Event in another namespace", coreEvent("attacker", "victim"), false},
	} {
		out, err := transform(tc.obj)
		require.NoError(t, err, tc.name)
		ob := out.(*cachedObject).take()
		if tc.kept {
			assert.NotNil(t, ob.event, tc.name)
			assert.Empty(t, ob.bad, tc.name)
		} else {
			assert.Nil(t, ob.event, tc.name)
			assert.Equal(t, "event_outside_object_namespace", ob.bad, tc.name, "the bad_objects reason")
		}
	}
}
