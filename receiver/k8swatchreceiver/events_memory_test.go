package k8swatchreceiver

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// kubeletEvent is a pod Event as a kubelet writes it, with what the API
// server adds (managed fields), decoded from JSON as a watch decodes it
// (each string its own allocation).
func kubeletEvent(t *testing.T, i int, node string) *eventsv1.Event {
	b, err := json.Marshal(kubeletEventObject(i, node))
	require.NoError(t, err)
	e := &eventsv1.Event{}
	require.NoError(t, json.Unmarshal(b, e))
	return e
}

func kubeletEventObject(i int, node string) *eventsv1.Event {
	now := metav1.NewTime(time.Now())
	pod := fmt.Sprintf("web-7c9cb467c4-%05d", i)
	return &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s.18%014x", pod, i), Namespace: "default",
			UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i)), ResourceVersion: fmt.Sprint(100000 + i),
			CreationTimestamp: now,
			ManagedFields: []metav1.ManagedFieldsEntry{{
				Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &now, FieldsType: "FieldsV1",
				FieldsV1: metav1.NewFieldsV1(`{"f:count":{},"f:firstTimestamp":{},"f:involvedObject":{},"f:lastTimestamp":{},"f:message":{},"f:reason":{},"f:reportingComponent":{},"f:reportingInstance":{},"f:source":{"f:component":{},"f:host":{}},"f:type":{}}`),
			}},
		},
		EventTime:           metav1.MicroTime{},
		ReportingController: "kubelet", ReportingInstance: node,
		Action: "Pulled", Reason: "Pulled", Type: corev1.EventTypeNormal,
		Note: `Successfully pulled image "registry.example/team/web:1.2.3" in 1.234s (1.234s including waiting). Image size: 12345678 bytes.`,
		Regarding: corev1.ObjectReference{
			Kind: "Pod", Namespace: "default", Name: pod, UID: types.UID(fmt.Sprintf("10000000-0000-0000-0000-%012d", i)),
			APIVersion: "v1", ResourceVersion: fmt.Sprint(90000 + i), FieldPath: "spec.containers{app}",
		},
		DeprecatedSource:         corev1.EventSource{Component: "kubelet", Host: node},
		DeprecatedFirstTimestamp: now, DeprecatedLastTimestamp: now, DeprecatedCount: 1,
	}
}

// TestAgentEventCacheIsSmall: every agent watches every pod Event of the
// cluster (the API cannot select them by node). 50,000 Events that other
// nodes' kubelets reported, through the informer's transform into its
// store, must leave the agent's heap under 20 MiB; an Event of its own
// node's kubelet keeps what the steps read.
func TestAgentEventCacheIsSmall(t *testing.T) {
	const events = 50_000
	transform := newTransform(nil, "node-0")
	store, held, read := cacheEvents(t, transform, events, func(i int) string { return fmt.Sprintf("node-%d", 1+i%99) })
	assert.Zero(t, read, "no other node's Event is read")
	t.Logf("%d Events of other nodes in the cache: %d MiB, %d B each", events, held>>20, held/events)
	// Kept as a cachedObject: 300 B each with the store's map and key
	// (508 B as a PartialObjectMetadata).
	assert.Less(t, held, int64(events*400), "under 400 B an Event: 50,000 leave an agent's heap under 20 MiB")
	assert.Len(t, store.List(), events, "each Event is still known by its key, so a later update is not taken for new")

	own, err := transform(kubeletEvent(t, 1, "node-0"))
	require.NoError(t, err)
	ob := own.(*cachedObject).take()
	require.NotNil(t, ob.event, "its own node's Event is read")
	v := *ob.event
	assert.Equal(t, "Pulled", v.reason)
	assert.Equal(t, "app", v.container)
	assert.Equal(t, 1234*time.Millisecond, v.duration, "the pull time read from the note")
	assert.NotEmpty(t, v.objectUID)
	runtime.KeepAlive(store)
}

// schedulerEvent is the scheduler's Scheduled Event for pod i, bound to
// node, decoded as a watch decodes it.
func schedulerEvent(t *testing.T, i int, node string) *eventsv1.Event {
	e := kubeletEventObject(i, node)
	e.ReportingController, e.ReportingInstance = "default-scheduler", "default-scheduler-control-plane"
	e.DeprecatedSource = corev1.EventSource{Component: "default-scheduler"}
	e.Action, e.Reason, e.Regarding.FieldPath = "Binding", "Scheduled", ""
	e.Note = fmt.Sprintf("Successfully assigned default/%s to %s", e.Regarding.Name, node)
	b, err := json.Marshal(e)
	require.NoError(t, err)
	out := &eventsv1.Event{}
	require.NoError(t, json.Unmarshal(b, out))
	return out
}

// TestAgentKeepsOnlyItsNodesEvents: an agent keeps whole only the Events
// about pods of its node (its kubelet's, the scheduler's Scheduled naming
// it); every other pod Event of the cluster is a key in its cache, or the
// agent's memory would grow with the cluster, not with its node's pods.
func TestAgentKeepsOnlyItsNodesEvents(t *testing.T) {
	transform := newTransform(nil, "node-0")
	for name, c := range map[string]struct {
		ev    *eventsv1.Event
		whole bool
	}{
		"its kubelet's":                          {kubeletEvent(t, 1, "node-0"), true},
		"another kubelet's":                      {kubeletEvent(t, 2, "node-1"), false},
		"Scheduled to its node":                  {schedulerEvent(t, 3, "node-0"), true},
		"Scheduled to another node":              {schedulerEvent(t, 4, "node-1"), false},
		"Scheduled to a node whose name ends so": {schedulerEvent(t, 5, "big-node-0"), false},
		"another kubelet's, by its source only":  {withoutReporting(kubeletEvent(t, 7, "node-1")), false},
		"its kubelet's, by its source only":      {withoutReporting(kubeletEvent(t, 8, "node-0")), true},
	} {
		obj, err := transform(c.ev)
		require.NoError(t, err)
		m, err := meta.Accessor(obj)
		require.NoError(t, err, name)
		assert.Equal(t, c.ev.Name, m.GetName(), "%s: its key stays", name)
		assert.Equal(t, c.ev.ResourceVersion, m.GetResourceVersion(), name)
		ob := obj.(*cachedObject).take()
		assert.Equal(t, c.whole, ob.event != nil, "%s: read", name)
		if ob.event != nil {
			assert.Equal(t, string(c.ev.Regarding.UID), ob.event.objectUID, name)
		}
	}
	// Cluster mode reads every Event.
	obj, err := newTransform(nil, "")(schedulerEvent(t, 6, "node-1"))
	require.NoError(t, err)
	ob := obj.(*cachedObject).take()
	require.NotNil(t, ob.event)
	assert.Equal(t, "Scheduled", ob.event.reason)
}

// withoutReporting is e as a core/v1 Event written without the reporting
// fields reads through events.k8s.io: only its deprecated source says who.
func withoutReporting(e *eventsv1.Event) *eventsv1.Event {
	e.ReportingController, e.ReportingInstance = "", ""
	return e
}

// TestGatewayEventCacheIsSmall: a gateway reads every pod Event of the
// cluster, and keeps each for the Event's hour in the API. 50,000 Events,
// through the transform into the store and their views taken by the
// handler as the informer would, must keep under 400 B each: the cache
// holds their keys, not the Events (a trimmed Event took 1,116 B).
func TestGatewayEventCacheIsSmall(t *testing.T) {
	const events = 50_000
	store, held, read := cacheEvents(t, newTransform(nil, ""), events, func(i int) string { return fmt.Sprintf("node-%d", i%100) })
	assert.Equal(t, events, read, "a gateway reads every Event")
	t.Logf("%d Events in a gateway's cache: %d MiB, %d B each", events, held>>20, held/events)
	assert.Less(t, held, int64(events*400), "under 400 B an Event")
	assert.Len(t, store.List(), events)
	runtime.KeepAlive(store)
}

// cacheEvents puts n kubelet Events (the i-th reported on node(i))
// through transform into a store, the handler taking each one's view as
// the informer's would, and returns the store, the heap it holds, and how
// many of the Events had a view to read.
func cacheEvents(t *testing.T, transform func(any) (any, error), n int, node func(int) string) (store cache.Store, held int64, read int) {
	store = cache.NewStore(cache.MetaNamespaceKeyFunc)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		obj, err := transform(kubeletEvent(t, i, node(i)))
		require.NoError(t, err)
		require.NoError(t, store.Add(obj))
		if obj.(*cachedObject).take().event != nil {
			read++
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return store, int64(after.HeapAlloc) - int64(before.HeapAlloc), read
}
