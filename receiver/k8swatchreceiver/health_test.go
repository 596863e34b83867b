package k8swatchreceiver

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubestitch/kubestitch/receiver/k8swatchreceiver/internal/metadata"
)

// statusHost records the component status events the receiver reports,
// as the collector's host hands them to the health_check extension.
type statusHost struct {
	component.Host
	mu     sync.Mutex
	events []*componentstatus.Event
}

func (h *statusHost) Report(ev *componentstatus.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
}

func (h *statusHost) last() *componentstatus.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) == 0 {
		return nil
	}
	return h.events[len(h.events)-1]
}

// TestForbiddenListIsReportedUntilItRecovers (#33): an agent whose
// ServiceAccount may not list pods reports a recoverable error as its
// component status (health_check's component_health turns one that lasts
// into an unready pod) and counts it; once the list is allowed and
// succeeds, it reports OK again.
func TestForbiddenListIsReportedUntilItRecovers(t *testing.T) {
	client := fake.NewClientset()
	var forbidden atomic.Bool
	forbidden.Store(true)
	client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if forbidden.Load() {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", nil)
		}
		return false, nil, nil
	})
	cfg := createDefaultConfig().(*Config)
	cfg.Mode, cfg.NodeName, cfg.Kinds = ModeNode, "node-1", []string{"Pod"}
	host := &statusHost{Host: componenttest.NewNopHost()}
	r, err := newWatchReceiver(receivertest.NewNopSettings(metadata.Type), cfg, &consumertest.TracesSink{}, func(*Config) (kubernetes.Interface, dynamic.Interface, error) {
		return client, nil, nil
	})
	require.NoError(t, err)
	require.NoError(t, r.Start(t.Context(), host))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(t.Context())) })

	require.Eventually(t, func() bool {
		ev := host.last()
		return ev != nil && ev.Status() == componentstatus.StatusRecoverableError
	}, 10*time.Second, 20*time.Millisecond, "a forbidden list is a recoverable error")
	assert.ErrorContains(t, host.last().Err(), "list/watch of Pod failed")
	assert.ErrorContains(t, host.last().Err(), "forbidden")
	// Reported once, however often the list is retried: the health check
	// counts recovery_duration from the report.
	time.Sleep(3 * time.Second) // the informer retries (backoff from 800 ms)
	host.mu.Lock()
	reports := len(host.events)
	host.mu.Unlock()
	assert.Equal(t, 1, reports, "one report of the error, not one per retry")

	forbidden.Store(false)
	require.Eventually(t, func() bool {
		ev := host.last()
		return ev != nil && ev.Status() == componentstatus.StatusOK
	}, 15*time.Second, 50*time.Millisecond, "OK once the list succeeds")
}
