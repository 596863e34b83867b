package k8swatchreceiver

import (
	"strings"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// maxCauseDepth bounds the walk up ownerReferences that hands a cause to
// the operations above (pod -> ReplicaSet -> Deployment): a cycle or a
// long chain stops there.
const maxCauseDepth = 8

// blocked handles a Warning about an object whose operation is open: the
// step it blocks gets a span at once, with the reason and message and an
// error status, so a backend shows the cause while the operation is still
// stuck (its object span comes only when it ends). One span per step and
// reason and operation: repeats of the Warning (the kubelet's back-off,
// the scheduler's retries) are not sent again (they are span events of
// the object span), so a stuck pod
// costs a bounded number of spans. The first cause is also kept for the
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
	start := st.StepEnd
	if start.IsZero() || start.After(ev.at) {
		start = st.TriggerTime
	}
	s := t.stepSpan(st, step, disc, start, ev.at, ev.timeSource, ev.source)
	s.level = fragment.LevelBlocked
	s.container = ev.container
	s.blocked = &blockedDetail{reason: ev.reason, message: ev.note}
	t.markChanged(v.uid)
	return []fragmentSpan{s}
}

// setCause records the first cause on the object and on the open
// operations of its owners this tracker knows. Called under the lock.
func (t *tracker) setCause(st *objectState, cause string) {
	for depth := 0; st != nil && depth < maxCauseDepth; depth++ {
		if st.Done || st.Trigger == "" || st.Trigger == fragment.TriggerDelete {
			return
		}
		if st.Cause == "" {
			st.Cause = cause
		}
		if st.view.ownerUID == "" {
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
		if strings.Contains(ev.note, "pull") || containerWaiting(v, "ErrImagePull", "ImagePullBackOff") {
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
	for _, c := range v.pod.containers {
		for _, r := range reasons {
			if c.waiting == r {
				return true
			}
		}
	}
	return false
}

// blockedDetail is what a blocked-step span says of its Warning.
type blockedDetail struct {
	reason, message string
}
