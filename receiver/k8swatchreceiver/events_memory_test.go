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
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:count":{},"f:firstTimestamp":{},"f:involvedObject":{},"f:lastTimestamp":{},"f:message":{},"f:reason":{},"f:reportingComponent":{},"f:reportingInstance":{},"f:source":{"f:component":{},"f:host":{}},"f:type":{}}`)},
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
// store, must leave the agent's heap under 100 MiB; an Event of its own
// node's kubelet keeps what the steps read.
func TestAgentEventCacheIsSmall(t *testing.T) {
	const events = 50_000
	transform := newTransform(nil, "node-0")
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range events {
		obj, err := transform(kubeletEvent(t, i, fmt.Sprintf("node-%d", 1+i%99)))
		require.NoError(t, err)
		require.NoError(t, store.Add(obj))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d Events of other nodes in the cache: %d MiB, %d B each", events, held>>20, held/events)
	assert.Less(t, held, int64(events*750), "under 750 B an Event: 50,000 leave an agent's heap far under 100 MiB")
	assert.Len(t, store.List(), events, "each Event is still known by its key, so a later update is not taken for new")

	own, err := transform(kubeletEvent(t, 1, "node-0"))
	require.NoError(t, err)
	v := viewEventsV1(own.(*eventsv1.Event))
	assert.Equal(t, "Pulled", v.reason)
	assert.Equal(t, "app", v.container)
	assert.Equal(t, 1234*time.Millisecond, v.duration, "the pull time read from the note")
	assert.NotEmpty(t, v.objectUID)
	runtime.KeepAlive(store)
}
