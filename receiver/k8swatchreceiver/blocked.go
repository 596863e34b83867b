package k8swatchreceiver

import (
	"slices"
	"strings"
	"time"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// maxCauseDepth bounds the walk up ownerReferences that hands a cause to
// the operations above (pod -> ReplicaSet -> Deployment): a cycle or a
// long chain stops there.
const maxCauseDepth = 8

// notBlocking are Warnings that block no step: the pod starts anyway
// (the kubelet falls back to the node's DNS settings), or they are about
// a stop, not a start. They stay span events of the object span.
var notBlocking = map[string]bool{
	"MissingClusterDNS":   true,
	"DNSConfigForming":    true,
	"FailedPreStopHook":   true,
	"ExceededGracePeriod": true,
	"FailedKillPod":       true,
}

// blocks says whether a Warning can block a step.
func blocks(ev eventView) bool {
	return ev.warning && !notBlocking[ev.reason]
}

// blocked handles a Warning about an object whose operation is open: the
// step it blocks gets a span at once, with the reason and message and an
// error status, so a backend shows the cause while the operation is still
// stuck (its object span comes only when it ends). One span per step and
// reason and operation: repeats of the Warning (the kubelet's back-off,
// the scheduler's retries) are not sent again (they are span events of
// the object span), so a stuck pod costs a bounded number of spans. The first cause is also kept for the
// object span and those of its owners' open operations (KeyCause), so the
// operation's root names it when it ends. Called under the lock.
func (t *tracker) blocked(st *objectState, ev eventView) []fragmentSpan {
	v := &st.view
	step := blockedStep(v, ev, st.Trigger)
	disc := "blocked/" + ev.reason + "/" + st.Trigger
	cause := ev.reason
	if ev.note != "" {
		cause += ": " + ev.note
	}
	t.setCause(st, cause)
	if st.emitted(step + "/" + disc) {
		return nil // a repeat: the object span's events list it
	}
	if st.eventSteps >= maxEventSteps {
		t.droppedEvents++
		return nil
	}
	st.eventSteps++
	start := st.StepEnd
	if start.IsZero() || start.After(ev.at) {
		start = st.TriggerTime
	}
	s := blockedSpan(st, step, disc, start, ev.at, ev.timeSource, ev.source,
		&blockedPart{container: ev.container, reason: ev.reason, message: ev.note})
	t.markChanged(v.uid)
	return []fragmentSpan{s}
}

// setCause records the first cause on the object and on the open
// operations of its owners this tracker knows. Called under the lock.
func (t *tracker) setCause(st *objectState, cause string) {
	t.walkUp(st, func(s *objectState) bool {
		if !s.startOpen() {
			return false
		}
		if s.Cause == "" {
			s.Cause = cause
		}
		return true
	})
}

// walkUp calls fn with st and then each owner this tracker knows, up to
// maxCauseDepth levels (a cycle stops there), while fn returns true.
// Called under the lock.
func (t *tracker) walkUp(st *objectState, fn func(*objectState) bool) {
	for depth := 0; st != nil && depth < maxCauseDepth; depth++ {
		if !fn(st) || st.view.ownerUID == "" {
			return
		}
		st = t.states[st.view.ownerUID]
	}
}

// blockedStep names the step a Warning blocks: the one that cannot
// happen while it lasts. The kubelet's BackOff covers both image pulls and
// restarts; its message, or without one (event_messages: none) the
// container's waiting reason, tells them apart.
func blockedStep(v *objectView, ev eventView, trigger string) string {
	switch ev.reason {
	case "FailedScheduling":
		return fragment.PhasePodSchedule
	case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InspectFailed":
		return fragment.PhaseImagePull
	case "Failed":
		// "Failed to pull image ...", then "Error: ErrImagePull".
		if strings.Contains(strings.ToLower(ev.note), "pull") || containerWaiting(v, "ErrImagePull", "ImagePullBackOff") {
			return fragment.PhaseImagePull
		}
		return fragment.PhaseContainerStart
	case "BackOff":
		if strings.Contains(ev.note, "pulling image") || containerWaiting(v, "ErrImagePull", "ImagePullBackOff") {
			return fragment.PhaseImagePull
		}
		return fragment.PhaseContainerStart
	}
	return fragment.ObjectPhase(v.kind, trigger)
}

func containerWaiting(v *objectView, reasons ...string) bool {
	if v.pod == nil {
		return false
	}
	return slices.ContainsFunc(v.pod.containers, func(c containerView) bool { return slices.Contains(reasons, c.waiting) })
}

// closeBelow ends, as not converged, the open operations of the objects
// under uid (by ownerReferences, as deep as maxCauseDepth) when uid's
// operation gave up: their object spans would otherwise never come (a
// pod that cannot be scheduled never becomes ready), and their steps would
// hang in the operation's trace without a parent. A later start of such
// an object is not traced; a fix is usually a new spec, a new operation
// with new objects. Called under the lock.
func (t *tracker) closeBelow(uid string, at time.Time, reason string) []fragmentSpan {
	var out []fragmentSpan
	for child, st := range t.states {
		if !st.startOpen() || !t.ownedBy(st, uid) {
			continue
		}
		out = append(out, objectSpan(st, at, fragment.TimeSourceWatch, false, reason))
		t.markChanged(child)
	}
	return out
}

// ownedBy says whether uid is among st's owners, up to maxCauseDepth
// levels. Called under the lock.
func (t *tracker) ownedBy(st *objectState, uid string) bool {
	owned := false
	t.walkUp(st, func(s *objectState) bool {
		owned = s.view.ownerUID == uid
		return !owned
	})
	return owned
}
