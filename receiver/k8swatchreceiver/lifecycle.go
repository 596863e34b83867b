package k8swatchreceiver

import (
	"time"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// maxPendingEvents bounds the Kubernetes Events kept per object until its
// object span is emitted; more are counted as dropped.
const maxPendingEvents = 32

// observe is called for every add or update of an object. at is the watch
// arrival; history says the object was seen at an initial list, so its own
// timestamps are the truthful ones.
func (t *tracker) observe(v objectView, at time.Time, history bool) []fragmentSpan {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.states[v.uid]
	isNew := st == nil
	if isNew {
		st = &objectState{}
		t.states[v.uid] = st
	}
	changed := false
	if st.view.resourceVersion != v.resourceVersion {
		st.LastChange = at
	}
	if o := t.states[v.ownerUID]; o != nil {
		v.ownerUID = o.view.uid // one copy for the owner and its children
	}
	st.view = v
	var out []fragmentSpan

	trigger := fragment.TriggerGeneration(v.generation)
	if v.deleting {
		trigger = fragment.TriggerDelete
	}
	initialList := history
	if isNew && !history && v.pod != nil && v.pod.scheduled && trigger != fragment.TriggerDelete {
		// A pod first seen already bound (an agent watches only its node's
		// pods): its creation and scheduling happened out of sight, so
		// only the object's own timestamps are truthful for them.
		history = true
	}
	if st.Trigger != trigger {
		if st.Trigger != "" && !st.Done {
			// A new trigger arrived before the old one converged: close it
			// as not converged rather than lose it.
			out = append(out, objectSpan(st, at, fragment.TimeSourceWatch, false, reasonSuperseded+trigger))
		}
		if isNew && initialList && trigger != fragment.TriggerDelete && v.converged {
			// This operation ran before we watched: there is nothing
			// truthful to emit about its steps. But if it began recently,
			// a watcher that died (the k8swatch Lease holder) may have
			// left it open at a processor, where it would take in the
			// next operation's children: close it there.
			st.Trigger, st.Done = trigger, true
			return t.resume(st, at)
		}
		t.startTrigger(st, trigger, at, history)
		out = append(out, triggerSpan(st, at, history))
		changed = true
	}
	if st.Done {
		st.compact()
		return out
	}
	if v.pod != nil && trigger != fragment.TriggerDelete {
		steps := podSteps(st, at, history)
		changed = changed || len(steps) > 0
		out = append(out, steps...)
		// A pod this watch delivers unbound and not at a list: the
		// delivery is the watcher's own moment of its creation.
		seenCreated := isNew && !initialList && !v.pod.scheduled
		out = append(out, t.sliObserve(st, at, seenCreated, initialList)...)
	}
	if trigger != fragment.TriggerDelete && v.failed != "" && !v.converged {
		// The object says the operation will not converge (a Deployment
		// past its progress deadline): end it now, as an error.
		out = append(out, objectSpan(st, at, fragment.TimeSourceWatch, false, v.failed))
		t.markChanged(v.uid)
		return append(out, t.closeBelow(v.uid, at, "owner gave up: "+v.failed)...)
	}
	if trigger != fragment.TriggerDelete && v.converged {
		end, src := at, fragment.TimeSourceWatch
		if history && !v.convergedAt.IsZero() {
			end, src = v.convergedAt, fragment.TimeSourceObject
		}
		out = append(out, objectSpan(st, end, src, true, ""))
		changed = true
	}
	if changed {
		t.markChanged(v.uid)
	}
	if st.Done {
		st.compact()
	}
	return out
}

// resumeWindow is how recent an operation's trigger must be for a first
// list to send its resumed object span: the processor's default
// operation_timeout, past which it closed the operation itself.
const resumeWindow = 10 * time.Minute

// resume is the object span of an operation seen converged at a first
// list, if it began within resumeWindow: it ends when the object says it
// converged, or else when it was listed. The processor drops it unless it
// holds the operation open; where the dead watcher had sent it, it is a
// repeat (the same span ID) and dropped as one.
func (t *tracker) resume(st *objectState, at time.Time) []fragmentSpan {
	own := ownTriggerTime(&st.view, st.Trigger)
	if own.IsZero() || at.Sub(own) > resumeWindow {
		return nil
	}
	t.startTrigger(st, st.Trigger, at, true)
	end, src := at, fragment.TimeSourceWatch
	if c := st.view.convergedAt; !c.IsZero() {
		end, src = c, fragment.TimeSourceObject
	}
	f := objectSpan(st, end, src, true, "")
	f.timeSource = src
	f.part.(*objectPart).resumed = true
	st.compact()
	return []fragmentSpan{f}
}

// quiet closes operations of objects without a status rule that saw no
// change for period: the generic rule of the design for custom resources.
// It also sends again, every reannounce (0: never), what a gateway needs
// to place each open or just-ended operation (reannounceOpen).
func (t *tracker) quiet(now time.Time, period, reannounce time.Duration) []fragmentSpan {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneEarly(now)
	var out []fragmentSpan
	// One pass over every object a second: the quiet rule, the SLI
	// spans whose Scheduled Event is overdue (sli.go), the reannounced
	// triggers.
	for uid, st := range t.states {
		out = append(out, t.sliOverdue(st, now)...)
		out = append(out, reannounceOpen(st, now, reannounce)...)
		if !st.Quiet || st.Done || st.Trigger == fragment.TriggerDelete || now.Sub(st.LastChange) < period {
			continue
		}
		out = append(out, objectSpan(st, st.LastChange, fragment.TimeSourceWatch, true, "quiet"))
		t.markChanged(uid)
	}
	return out
}

// reannounceOpen is what a processor needs to place the rest of st's
// operation, sent again once every interval: the trigger span while the
// operation is open, and for reannounceAfterEnd after it ended the trigger
// and the object span (the same IDs, marked fragment.KeyReannounced).
// The operation's spans go to the gateway that owns its namespace; when
// that gateway dies, its namespaces move to others that never saw the
// operation, and without it the rest (the next pods, a pod's deletion
// that outlasts its ReplicaSet's scale-down, the rollout's end) would
// open traces of their own there. A processor only learns from these; it
// never sends them on. An operation open for more than resumeWindow (a
// pod that never starts) is no longer sent: the processor has timed it
// out by then.
func reannounceOpen(st *objectState, now time.Time, interval time.Duration) []fragmentSpan {
	if interval <= 0 || st.Trigger == "" {
		return nil
	}
	if st.Done && (st.ended.IsZero() || now.Sub(st.ended) > reannounceAfterEnd) ||
		!st.Done && now.Sub(st.TriggerTime) > resumeWindow {
		return nil
	}
	if st.announced.IsZero() { // sent moments ago, when it started
		st.announced = now
		return nil
	}
	if now.Sub(st.announced) < interval {
		return nil
	}
	st.announced = now
	trigger := triggerSpan(st, st.TriggerTime, true)
	trigger.part = reannounced{}
	if !st.Done {
		return []fragmentSpan{trigger}
	}
	return []fragmentSpan{trigger, {spanHead: objectHead(st, st.ended, st.TimeSource), part: reannounced{}}}
}

// reannounceAfterEnd is how long an ended operation is still reannounced:
// its children may outlast it (a pod's deletion, 30 s by default, after
// its ReplicaSet's scale-down ended), and a gateway that takes their
// namespace over needs it to place them.
const reannounceAfterEnd = 30 * time.Second

// gone is called for a DELETED watch event: the deletion operation ends.
func (t *tracker) gone(v objectView, at time.Time) []fragmentSpan {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.states[v.uid]
	if st == nil {
		st = &objectState{}
	}
	st.view = v
	return t.end(st, at)
}

// goneByUID is gone for a tombstone (a deletion the watch missed, seen at
// a relist), which brings only the object's key: the last view is the
// tracker's own. An object never observed has nothing to end.
func (t *tracker) goneByUID(uid string, at time.Time) []fragmentSpan {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.states[uid]
	if st == nil {
		return nil
	}
	return t.end(st, at)
}

// end closes what is open of a deleted object and forgets it.
func (t *tracker) end(st *objectState, at time.Time) []fragmentSpan {
	var out []fragmentSpan
	if st.Trigger != fragment.TriggerDelete {
		if st.Trigger != "" && !st.Done {
			out = append(out, objectSpan(st, at, fragment.TimeSourceWatch, false, "deleted"))
		}
		// The deletion started and ended between two observations.
		t.startTrigger(st, fragment.TriggerDelete, at, false)
		out = append(out, triggerSpan(st, at, false))
	}
	if !st.Done {
		out = append(out, objectSpan(st, at, fragment.TimeSourceWatch, true, ""))
	}
	delete(t.states, st.view.uid)
	t.markChanged(st.view.uid)
	return out
}

func (t *tracker) startTrigger(st *objectState, trigger string, at time.Time, history bool) {
	v := &st.view
	st.Trigger, st.Done, st.Emitted, st.pending, st.eventSteps = trigger, false, nil, nil, 0
	st.announced = time.Time{}
	st.TriggerTime, st.TimeSource = at, fragment.TimeSourceWatch
	own := ownTriggerTime(v, trigger)
	switch {
	case history:
		st.TimeSource = fragment.TimeSourceObject
		st.TriggerTime = own
		if own.IsZero() && v.generation > 1 {
			st.TriggerTime = v.created
		}
	case !own.IsZero() && at.After(own.Add(time.Second)):
		// Seen live, but late: the watch of this kind lagged (informers of
		// different kinds deliver on their own schedules, and far apart on
		// a loaded API server). The object's own timestamp is whole
		// seconds, so the trigger happened before own + 1 s: take that,
		// or a Deployment's trigger seen late would start after the
		// ReplicaSet scale it caused, and the scale would open a trace of
		// its own.
		st.TriggerTime = own.Add(time.Second)
	}
	st.StepEnd = st.TriggerTime
}

// ownTriggerTime is the object's own timestamp of a trigger, from the API
// server's clock in whole seconds: creation, the last spec change, or the
// deletion request. Zero when the object does not say.
func ownTriggerTime(v *objectView, trigger string) time.Time {
	switch {
	case trigger == fragment.TriggerDelete:
		return v.deleteStart
	case v.generation <= 1:
		return v.created
	default:
		return v.managedAt
	}
}

// event handles a Kubernetes Event about object uid. Events that carry a
// duration become short spans; the others wait to be span events of the
// object span.
func (t *tracker) event(ev eventView) []fragmentSpan {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.states[ev.objectUID]
	if st == nil || st.Trigger == "" {
		t.sliEarly(ev)
		t.droppedEvents++
		return nil
	}
	// A pod may be ready (its operation done) before the scheduler's
	// Event arrives: the SLI still waits for it.
	out := t.sliEvent(st, ev)
	if st.Done {
		if out == nil {
			t.droppedEvents++
		}
		return out
	}
	if blocks(ev) {
		out = append(out, t.blocked(st, ev)...)
	}
	if ev.duration > 0 && ev.reason == "Pulled" {
		disc := "event/" + ev.uid
		if st.emitted(fragment.PhaseImagePull + "/" + disc) {
			return out
		}
		if st.eventSteps >= maxEventSteps {
			t.droppedEvents++
			return out
		}
		st.eventSteps++
		s := stepSpan(st, fragment.PhaseImagePull, disc, ev.at.Add(-ev.duration), ev.at, ev.timeSource, ev.source,
			&stepPart{container: ev.container, reason: ev.reason})
		t.markChanged(ev.objectUID)
		return append(out, s)
	}
	if len(st.pending) >= maxPendingEvents {
		t.droppedEvents++
		return out
	}
	st.pending = append(st.pending, spanEvent{name: ev.reason, at: ev.at, message: ev.note, source: ev.source})
	return out
}
