package k8swatchreceiver

import (
	"time"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// sliScheduleWait is how long a pod seen running waits for the
// scheduler's Scheduled Event (a watch of its own, delivered on its own
// schedule) before its SLI spans take the PodScheduled condition instead.
const sliScheduleWait = 5 * time.Second

// maxEarlyScheduled bounds the Scheduled Events kept for pods not yet
// seen; earlyScheduledTTL is how long one is kept. A node agent sees every
// pod's Scheduled Event (the API cannot select Events by node) and its own
// pods only once bound, often after their Event: it keeps each a while in
// case the pod turns out to be its own. At 100 pods/s cluster-wide that is
// 3,000 entries.
const (
	maxEarlyScheduled = 8192
	earlyScheduledTTL = 30 * time.Second
)

// sliEligible says whether a pod start counts toward the SLI: a
// schedulable stateless pod (not a StatefulSet's) whose start this watch
// saw happen.
func sliEligible(v *objectView) bool {
	return v.pod != nil && v.ownerKind != "StatefulSet"
}

// sliObserve arms the SLI of a pod seen before it runs (at the initial
// list too: its Running is still to be watched), notes the moments the
// watch delivers it created (seenCreated), bound, with its init
// containers done and with its containers started, and returns its SLI
// spans once it is delivered Running if its schedule is known. A pod
// first seen running is never measured: its watch time is not the moment
// it ran; neither is a list's delivery a moment of the pod's (listed).
// Called under the tracker's lock.
func (t *tracker) sliObserve(st *objectState, at time.Time, seenCreated, listed bool) []fragmentSpan {
	v := &st.view
	if !sliEligible(v) || st.Trigger != fragment.TriggerGeneration(1) {
		return nil
	}
	if !v.pod.running {
		if st.sli == nil {
			st.sli = &podSLI{}
			if seenCreated {
				st.sli.create = at
			}
		}
		// A list's delivery time is no moment of the pod's.
		if s := st.sli; !s.sent && !listed {
			if v.pod.scheduled && s.bound.IsZero() {
				s.bound = at
			}
			if v.pod.hasInit && v.pod.initialized && s.initialized.IsZero() {
				s.initialized = at
			}
			if allStarted(v.pod) && s.run.IsZero() {
				s.run = at
			}
		}
		return nil
	}
	s := st.sli
	if s == nil || s.sent || !s.watch.IsZero() {
		return nil
	}
	if early, ok := t.earlyScheduled[v.uid]; ok && s.schedule.IsZero() {
		s.schedule, s.scheduleSource = early, sliSourceEvent
	}
	delete(t.earlyScheduled, v.uid)
	s.watch = at
	if s.run.IsZero() {
		// The update that reports the containers started is this one.
		s.run = at
	}
	if s.schedule.IsZero() && !s.bound.IsZero() {
		s.schedule, s.scheduleSource = s.bound, sliSourceWatch
	}
	if s.schedule.IsZero() {
		return nil
	}
	return sliSpans(st)
}

// allStarted says whether every container of the pod runs.
func allStarted(p *podView) bool {
	for i := range p.containers {
		if !p.containers[i].running {
			return false
		}
	}
	return len(p.containers) > 0
}

// sliEarly keeps the Scheduled Event of a pod not seen yet. Called under
// the lock.
func (t *tracker) sliEarly(ev eventView) {
	if ev.reason != "Scheduled" || ev.timeSource != fragment.TimeSourceEvent {
		return
	}
	if t.earlyScheduled == nil {
		t.earlyScheduled = map[string]time.Time{}
	}
	if len(t.earlyScheduled) >= maxEarlyScheduled {
		// Full within a TTL: a burst beyond the bound. Start over; the
		// pods whose Event went use the PodScheduled condition.
		clear(t.earlyScheduled)
	}
	t.earlyScheduled[ev.objectUID] = ev.at
}

// pruneEarly drops the early Scheduled Events older than the TTL at now.
// Called under the lock.
func (t *tracker) pruneEarly(now time.Time) {
	for uid, at := range t.earlyScheduled {
		if now.Sub(at) >= earlyScheduledTTL {
			delete(t.earlyScheduled, uid)
		}
	}
}

// sliEvent takes what the SLI needs from an Event about a pod: the
// scheduler's Scheduled, the kubelet's pulls. Called under the lock.
func (t *tracker) sliEvent(st *objectState, ev eventView) []fragmentSpan {
	s := st.sli
	if s == nil || s.sent {
		return nil
	}
	// Only the reporters that make these moments: the pod's scheduler
	// binds it, the kubelet pulls. An Event anyone wrote in the pod's
	// namespace with another reporter must not skew the SLI (trust
	// finding 5).
	scheduler := "default-scheduler"
	if p := st.view.pod; p != nil && p.scheduler != "" {
		scheduler = p.scheduler
	}
	switch {
	case ev.reason == "Scheduled" && s.schedule.IsZero() && ev.timeSource == fragment.TimeSourceEvent && ev.source == scheduler:
		// Only with its eventTime: without, its time is whole seconds,
		// no better than the PodScheduled condition.
		s.schedule, s.scheduleSource = ev.at, sliSourceEvent
	case ev.reason == "Pulled" && ev.duration > 0 && ev.source == "kubelet":
		s.pulls++
		start := ev.at.Add(-ev.duration)
		if s.pullStart.IsZero() || start.Before(s.pullStart) {
			s.pullStart = start
		}
		if ev.at.After(s.pullEnd) {
			s.pullEnd = ev.at
		}
		return nil
	default:
		return nil
	}
	if s.watch.IsZero() {
		return nil
	}
	return sliSpans(st)
}

// sliOverdue sends the SLI spans of a pod that ran more than
// sliScheduleWait ago without a Scheduled Event, with the PodScheduled
// condition's time. Called under the lock, by quiet's pass.
func (t *tracker) sliOverdue(st *objectState, now time.Time) []fragmentSpan {
	s := st.sli
	if s == nil || s.sent || s.watch.IsZero() || now.Sub(s.watch) < sliScheduleWait {
		return nil
	}
	if st.view.pod == nil || st.view.pod.scheduledAt.IsZero() {
		st.sli = sliSent // nothing truthful to measure from
		return nil
	}
	s.schedule, s.scheduleSource = st.view.pod.scheduledAt, sliSourceCondition
	return sliSpans(st)
}
