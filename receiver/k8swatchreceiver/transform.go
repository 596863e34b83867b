package k8swatchreceiver

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubestitch/kubestitch/internal/intern"
)

// newTransform turns every object, before it reaches the informer's cache,
// into what the cache needs to keep of it: a cachedObject, its key and
// resource version, with the object's view riding along until the handler
// gives it to the tracker. The tracker's state is then the one copy of
// what the phases need; the cache keeps about 150 bytes per object where a
// trimmed Pod took 3 KB (BenchmarkGatewayMemory150kPods). Secret data, env
// and annotations outside the allow-list never reach memory that lasts.
//
// Events too (newCachedEvent): the cache keeps their key, the handler
// gets their view. node is the node of a node-mode receiver ("" in
// cluster mode): an Event about another node's pod gets no view, since
// every agent watches every pod Event of the cluster (the API cannot
// select Events by node: their selectable fields are regarding.*, reason,
// reportingController, source and type).
//
// The transform is idempotent: a watch-list's Replace may hand it objects
// it made already.
func newTransform(allow map[string]bool, node string) func(any) (any, error) {
	strs := intern.New(maxInterned)
	return func(obj any) (any, error) {
		switch o := obj.(type) {
		case *cachedObject:
			return obj, nil
		case *eventsv1.Event:
			if !inObjectsNamespace(o.Namespace, o.Regarding.Namespace) {
				return newBadEvent(&o.ObjectMeta, strs), nil
			}
			keep := node == "" || aboutNode(node, o.ReportingController, o.ReportingInstance, o.DeprecatedSource, o.Reason, o.Note)
			return newCachedEvent(&o.ObjectMeta, keep, func() eventView { return viewEventsV1(o) }, strs), nil
		case *corev1.Event:
			if !inObjectsNamespace(o.Namespace, o.InvolvedObject.Namespace) {
				return newBadEvent(&o.ObjectMeta, strs), nil
			}
			keep := node == "" || aboutNode(node, o.ReportingController, o.ReportingInstance, o.Source, o.Reason, o.Message)
			return newCachedEvent(&o.ObjectMeta, keep, func() eventView { return viewCoreEvent(o) }, strs), nil
		}
		return newCachedObject(obj, allow, strs), nil
	}
}

// maxContainers bounds the containers of one pod that get steps; a pod
// beyond it is logged and counted, and its first maxContainers are used.
const maxContainers = 256

// maxInterned bounds the distinct namespaces, owner kinds and field
// managers an informer keeps one copy of.
const maxInterned = 4096

// cachedObject is what the informer's cache keeps of a watched object: the
// key and resource version the informer reads (to store it, and to tell an
// update from a resync), its UID (a tombstone's way to the tracker's
// state), and until the handler takes it, what the transform made of it.
// It implements metav1.ObjectMetaAccessor for the informer's key function.
type cachedObject struct {
	namespace, name, uid, resourceVersion string

	untaken *observation
}

// observation is what the transform made of an object for the handler.
type observation struct {
	// event is an Event's view (and view is nil).
	event *eventView
	// view is nil if there is nothing to observe (see bad).
	view *objectView
	// quiet: a custom resource without a status, closed by the quiet rule.
	quiet bool
	// bad is a bad_objects reason.
	bad string
}

func newCachedObject(obj any, allow map[string]bool, strs *intern.Table) *cachedObject {
	c := &cachedObject{}
	if m, err := meta.Accessor(obj); err == nil {
		c.namespace, c.name, c.uid, c.resourceVersion = strs.String(m.GetNamespace()), m.GetName(), string(m.GetUID()), m.GetResourceVersion()
	}
	v, quiet, bad := viewOf(obj, allow)
	if v != nil {
		// What repeats across objects, kept once.
		v.namespace, v.ownerKind = c.namespace, strs.String(v.ownerKind)
		v.manager, v.nodeAgent = strs.String(v.manager), strs.String(v.nodeAgent)
	}
	c.untaken = &observation{view: v, quiet: quiet, bad: bad}
	return c
}

// GetObjectMeta is the key the informer files the object under. It
// allocates: a cached object is small because it does not keep one.
func (c *cachedObject) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: c.namespace, Name: c.name, UID: types.UID(c.uid), ResourceVersion: c.resourceVersion}
}

// take hands the observation to the handler, once: what stays in the
// cache is the key. A tombstone of the object later brings the same
// cachedObject, without it (the zero observation).
func (c *cachedObject) take() observation {
	o := c.untaken
	c.untaken = nil
	if o == nil {
		return observation{}
	}
	return *o
}

// viewOf is the view of a watched object, and a bad_objects reason if
// something is wrong with it; a nil view is nothing to observe.
func viewOf(obj any, allow map[string]bool) (*objectView, bool, string) {
	var v objectView
	quiet, bad := false, ""
	switch o := obj.(type) {
	case *corev1.Pod:
		v = viewPod(o, allow)
		if n := len(v.pod.containers); n > maxContainers {
			bad = "too_many_containers"
			v.pod.containers = slices.Clone(v.pod.containers[:maxContainers])
		}
	case *appsv1.Deployment:
		v = viewDeployment(o, allow)
	case *appsv1.ReplicaSet:
		v = viewReplicaSet(o, allow)
	case *appsv1.StatefulSet:
		v = viewStatefulSet(o, allow)
	case *appsv1.DaemonSet:
		v = viewDaemonSet(o, allow)
	case *batchv1.Job:
		v = viewJob(o, allow)
	case *batchv1.CronJob:
		v = viewCronJob(o, allow)
	case *corev1.Node:
		v = viewNode(o, allow)
	case *unstructured.Unstructured:
		var hasStatus bool
		v, hasStatus = viewUnstructured(o, allow)
		quiet = !hasStatus
	default:
		return nil, false, fmt.Sprintf("unexpected_type_%T", obj)
	}
	if v.uid == "" {
		return nil, false, "missing_uid"
	}
	sanitize(&v)
	return &v, quiet, bad
}

// newCachedEvent is what the cache keeps of an Event: its key, like any
// object's. The view the handler reads rides along until it is taken; an
// Event the receiver does not read (keep false: about another node's pod)
// has none, and the handler skips it.
func newCachedEvent(m *metav1.ObjectMeta, keep bool, view func() eventView, strs *intern.Table) *cachedObject {
	c := &cachedObject{namespace: strs.String(m.Namespace), name: m.Name, uid: string(m.UID), resourceVersion: m.ResourceVersion}
	if keep {
		v := view()
		// Its own copy: a substring of the decoded note would keep the
		// whole Event's note alive while the view waits in the tracker.
		v.note = strings.Clone(v.note)
		c.untaken = &observation{event: &v}
	}
	return c
}

// badEventOtherNamespace is the bad_objects reason of an Event written in
// a namespace other than its object's.
const badEventOtherNamespace = "event_outside_object_namespace"

// inObjectsNamespace says whether an Event (in namespace eventNS) may
// speak of its object (in objectNS): Kubernetes writes an Event in its
// object's namespace, and one about a cluster-scoped object (a Node) in
// default. Anyone who may create Events in a namespace of theirs could
// otherwise write steps, errors and causes into another namespace's
// operations (trust finding 5): the API checks neither.
func inObjectsNamespace(eventNS, objectNS string) bool {
	if objectNS == "" {
		return eventNS == metav1.NamespaceDefault
	}
	return eventNS == objectNS
}

// newBadEvent is an Event the handler counts and drops.
func newBadEvent(m *metav1.ObjectMeta, strs *intern.Table) *cachedObject {
	c := &cachedObject{namespace: strs.String(m.Namespace), name: m.Name, uid: string(m.UID), resourceVersion: m.ResourceVersion}
	c.untaken = &observation{bad: badEventOtherNamespace}
	return c
}

// aboutNode tells whether a pod Event is one a node's agent reads: its
// kubelet's, or the scheduler's Scheduled that binds a pod to it (which
// can come before the pod's own watch event: sliEarly). Every other pod
// Event of the cluster is about a pod elsewhere or not yet placed, and
// the gateway's cluster-mode receiver has it.
func aboutNode(node, controller, instance string, source corev1.EventSource, reason, note string) bool {
	if controller == "" { // a core/v1 Event written without the reporting fields
		controller, instance = source.Component, source.Host
	}
	if controller == "kubelet" {
		return instance == "" || instance == node
	}
	// The scheduler's message, unchanged since v1.0: "Successfully
	// assigned <namespace>/<pod> to <node>".
	return reason == "Scheduled" && strings.HasSuffix(note, " to "+node)
}
