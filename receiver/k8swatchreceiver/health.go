package k8swatchreceiver

import (
	"fmt"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"k8s.io/client-go/tools/cache"
)

// watchHealth reports the receiver's component status from its
// informers: a list or watch that fails (a Forbidden first list, an API
// server out of reach) is a recoverable error until that informer lists or
// watches again. The health_check extension (component_health) turns an
// error that lasts into an unready pod: an agent that cannot see its
// node's pods must say so, not stay ready and log Forbidden forever.
type watchHealth struct {
	host component.Host

	mu      sync.Mutex
	failing map[string]failedInformer
	// reported is the last status reported: OK or not.
	reportedOK bool
}

// failedInformer is an informer whose last list or watch failed, and the
// resource version it had synced to then: a new one means it recovered.
type failedInformer struct {
	inf cache.SharedIndexInformer
	rv  string
}

func newWatchHealth(host component.Host) *watchHealth {
	return &watchHealth{host: host, failing: map[string]failedInformer{}, reportedOK: true}
}

// failed records that the informer of kind (in namespace ns) failed to
// list or watch.
func (h *watchHealth) failed(kind, ns string, inf cache.SharedIndexInformer, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := kind + "/" + ns
	if f, ok := h.failing[key]; !ok || f.inf != inf {
		h.failing[key] = failedInformer{inf: inf, rv: inf.LastSyncResourceVersion()}
	}
	if !h.reportedOK {
		// Reported once, when the trouble began: the health check counts
		// recovery_duration from the error's report, so a report per retry
		// (every few seconds, with backoff) would restart that clock and
		// the pod would never go unready.
		return
	}
	h.reportedOK = false
	where := kind
	if ns != "" {
		where += " in namespace " + ns
	}
	componentstatus.ReportStatus(h.host, componentstatus.NewRecoverableErrorEvent(fmt.Errorf("list/watch of %s failed: %w", where, err)))
}

// check reports OK once every informer that failed has synced again
// (called every second).
func (h *watchHealth) check() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, f := range h.failing {
		if rv := f.inf.LastSyncResourceVersion(); rv != "" && rv != f.rv {
			delete(h.failing, key)
		}
	}
	if len(h.failing) == 0 && !h.reportedOK {
		h.reportedOK = true
		componentstatus.ReportStatus(h.host, componentstatus.NewEvent(componentstatus.StatusOK))
	}
}

// forget drops the failures of informers that stopped (leadership lost,
// shutdown): they will never sync again, and a new watch makes new ones.
func (h *watchHealth) forget(stopped []cache.SharedIndexInformer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, f := range h.failing {
		for _, inf := range stopped {
			if f.inf == inf {
				delete(h.failing, key)
			}
		}
	}
}
