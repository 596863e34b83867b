package k8swatchreceiver

import (
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// maxPendingEvents bounds the Kubernetes Events kept per object until its
// object span is emitted; more are counted as dropped.
const maxPendingEvents = 32

// reasonSuperseded starts the reason of an object span closed by a newer
// trigger.
const reasonSuperseded = "superseded by "

// fragmentSpan is one span the tracker decided to emit; emit.go turns a
// batch of them into ptrace.Traces.
type fragmentSpan struct {
	traceID          pcommon.TraceID
	spanID, parentID pcommon.SpanID
	name             string
	level            string
	service          string
	start, end       time.Time
	timeSource       string
	obj              *objectView
	trigger          string
	triggerTime      time.Time
	converged        *bool
	reason           string
	container        string
	image            string
	events           []spanEvent
	cause            string
	sli              *sliDetail
	blocked          *blockedDetail
	// resumed: an object span for an operation that converged out of
	// sight (fragment.KeyResumed).
	resumed bool
}

type spanEvent struct {
	name    string
	at      time.Time
	message string
	source  string
}

// objectState is what the tracker remembers per object: the current
// trigger, its time, and which steps of it were already emitted. It is what
// the storage extension persists, so a restart neither repeats nor loses a
// step.
type objectState struct {
	Trigger     string    `json:"t"`
	TriggerTime time.Time `json:"tt"`
	TimeSource  string    `json:"ts"`
	Done        bool      `json:"d,omitempty"`
	// Quiet: a kind without a status; the quiet rule closes it (LastChange).
	Quiet   bool      `json:"q,omitempty"`
	Emitted []string  `json:"e,omitempty"`
	StepEnd time.Time `json:"se,omitzero"`
	// LastChange is when the object last changed, for the quiet rule of
	// kinds without a status to converge on.
	LastChange time.Time `json:"lc,omitzero"`
	// Cause is the first Warning that blocked the open operation, here
	// or below it (blocked.go).
	Cause string `json:"c,omitempty"`

	pending []spanEvent
	view    objectView
	sli     *podSLI
}

func (s *objectState) emitted(key string) bool {
	for _, e := range s.Emitted {
		if e == key {
			return true
		}
	}
	return false
}

// tracker turns observations of objects into fragments. It is safe for
// concurrent use: informers of different kinds call it from their own
// goroutines, and Events attach to the state of the object they are about.
type tracker struct {
	mu     sync.Mutex
	states map[string]*objectState
	// persist turns on change tracking: changed lists the objects whose
	// state changed since takeChanges (what emitted something, and
	// objects gone), for storage.
	persist bool
	changed map[string]struct{}
	// droppedEvents counts Kubernetes Events that had no span to go on.
	droppedEvents int64
	// earlyScheduled are Scheduled Events of pods not seen yet (sli.go).
	earlyScheduled map[string]time.Time
}

func newTracker() *tracker {
	return &tracker{states: map[string]*objectState{}}
}

// markChanged records, with persist on, that uid's state changed.
// Called under the lock.
func (t *tracker) markChanged(uid string) {
	if t.persist {
		t.changed[uid] = struct{}{}
	}
}

// trackChanges turns on change tracking for storage.
func (t *tracker) trackChanges() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.persist, t.changed = true, map[string]struct{}{}
}

// takeChanges calls fn, under the lock, with every object whose state
// changed since the last call (st nil: it is gone), and starts anew.
func (t *tracker) takeChanges(fn func(uid string, st *objectState)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for uid := range t.changed {
		fn(uid, t.states[uid])
	}
	clear(t.changed)
}

// restore puts a persisted state back before the object is first observed.
func (t *tracker) restore(uid string, st *objectState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.states[uid]; !ok {
		st.view.viewDetail = restingDetail // nothing is known of it but its state
		t.states[uid] = st
	}
}

func (t *tracker) tracked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.states)
}

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
			out = append(out, t.objectSpan(st, at, fragment.TimeSourceWatch, false, reasonSuperseded+trigger))
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
		out = append(out, t.triggerSpan(st, at, history))
		changed = true
	}
	if st.Done {
		st.compact()
		return out
	}
	if v.pod != nil && trigger != fragment.TriggerDelete {
		steps := t.podSteps(st, at, history)
		changed = changed || len(steps) > 0
		out = append(out, steps...)
		out = append(out, t.sliObserve(st, at)...)
	}
	if trigger != fragment.TriggerDelete && v.failed != "" && !v.converged {
		// The object says the operation will not converge (a Deployment
		// past its progress deadline): end it now, as an error.
		out = append(out, t.objectSpan(st, at, fragment.TimeSourceWatch, false, v.failed))
		t.markChanged(v.uid)
		return append(out, t.closeBelow(v.uid, at, "owner gave up: "+v.failed)...)
	}
	if trigger != fragment.TriggerDelete && v.converged {
		end, src := at, fragment.TimeSourceWatch
		if history && !v.convergedAt.IsZero() {
			end, src = v.convergedAt, fragment.TimeSourceObject
		}
		out = append(out, t.objectSpan(st, end, src, true, ""))
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
	f := t.objectSpan(st, end, src, true, "")
	f.timeSource, f.resumed = src, true
	st.compact()
	return []fragmentSpan{f}
}

// compact drops, once an operation is done, what only an open one needs:
// the steps it emitted, the pod's conditions and containers, the view's
// detail (its times, manager, annotations), and a sent SLI's phases. The objects of a cluster at rest
// are nearly all done, so this is most of the tracker's memory
// (BenchmarkGatewayMemory150kPods). The next observation brings a full
// view again. A pod whose SLI still waits for its Scheduled Event keeps
// its view: the fallback reads its PodScheduled condition.
func (st *objectState) compact() {
	st.Emitted = nil
	if st.sli == nil || st.sli.sent {
		// Replaced, not cleared: a fragment in flight may share them
		// (snapshot).
		st.view.pod, st.view.viewDetail = nil, restingDetail
	}
}

// quiet closes operations of objects without a status rule that saw no
// change for period: the generic rule of the design for custom resources.
func (t *tracker) quiet(now time.Time, period time.Duration) []fragmentSpan {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneEarly(now)
	var out []fragmentSpan
	// One pass over every object a second: the quiet rule, and the SLI
	// spans whose Scheduled Event is overdue (sli.go).
	for uid, st := range t.states {
		out = append(out, t.sliOverdue(st, now)...)
		if !st.Quiet || st.Done || st.Trigger == fragment.TriggerDelete || now.Sub(st.LastChange) < period {
			continue
		}
		out = append(out, t.objectSpan(st, st.LastChange, fragment.TimeSourceWatch, true, "quiet"))
		t.markChanged(uid)
	}
	return out
}

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
			out = append(out, t.objectSpan(st, at, fragment.TimeSourceWatch, false, "deleted"))
		}
		// The deletion started and ended between two observations.
		t.startTrigger(st, fragment.TriggerDelete, at, false)
		out = append(out, t.triggerSpan(st, at, false))
	}
	if !st.Done {
		out = append(out, t.objectSpan(st, at, fragment.TimeSourceWatch, true, ""))
	}
	delete(t.states, st.view.uid)
	t.markChanged(st.view.uid)
	return out
}

func (t *tracker) startTrigger(st *objectState, trigger string, at time.Time, history bool) {
	v := &st.view
	st.Trigger, st.Done, st.Emitted, st.pending = trigger, false, nil, nil
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

func (t *tracker) triggerSpan(st *objectState, at time.Time, history bool) fragmentSpan {
	v := &st.view
	end := at
	if history {
		end = st.TriggerTime
	}
	svc := v.manager
	if svc == "" {
		svc = "kube-apiserver"
	}
	return fragmentSpan{
		traceID:     fragment.TraceID(v.uid, st.Trigger),
		spanID:      fragment.TriggerSpanID(v.uid, st.Trigger),
		parentID:    fragment.ObjectSpanID(v.uid, v.kind, st.Trigger),
		name:        fragment.PhaseTrigger,
		level:       fragment.LevelTrigger,
		service:     svc,
		start:       st.TriggerTime,
		end:         notBefore(end, st.TriggerTime),
		timeSource:  st.TimeSource,
		obj:         snapshot(v),
		trigger:     st.Trigger,
		triggerTime: st.TriggerTime,
	}
}

func (t *tracker) objectSpan(st *objectState, end time.Time, src string, converged bool, reason string) fragmentSpan {
	v := &st.view
	st.Done = true
	evs := st.pending
	st.pending = nil
	cause := st.Cause
	st.Cause = ""
	if src == fragment.TimeSourceWatch && st.TimeSource == fragment.TimeSourceObject {
		src = fragment.TimeSourceObject
	}
	return fragmentSpan{
		traceID:     fragment.TraceID(v.uid, st.Trigger),
		spanID:      fragment.ObjectSpanID(v.uid, v.kind, st.Trigger),
		name:        fragment.ObjectPhase(v.kind, st.Trigger),
		level:       fragment.LevelObject,
		service:     objectService(v, st.Trigger),
		start:       st.TriggerTime,
		end:         notBefore(end, st.TriggerTime),
		timeSource:  src,
		obj:         snapshot(v),
		trigger:     st.Trigger,
		triggerTime: st.TriggerTime,
		converged:   &converged,
		reason:      reason,
		events:      evs,
		cause:       cause,
	}
}

func (t *tracker) stepSpan(st *objectState, phase, disc string, start, end time.Time, src, svc string) fragmentSpan {
	v := &st.view
	st.Emitted = append(st.Emitted, phase+"/"+disc)
	return fragmentSpan{
		traceID:     fragment.TraceID(v.uid, st.Trigger),
		spanID:      fragment.SpanID(v.uid, phase, disc),
		parentID:    fragment.ObjectSpanID(v.uid, v.kind, st.Trigger),
		name:        phase,
		level:       fragment.LevelStep,
		service:     svc,
		start:       start,
		end:         notBefore(end, start),
		timeSource:  src,
		obj:         snapshot(v),
		trigger:     st.Trigger,
		triggerTime: st.TriggerTime,
	}
}

// podSteps emits the startup steps of a pod that became true since the last
// observation, each once: schedule, initialize, container start, ready.
func (t *tracker) podSteps(st *objectState, at time.Time, history bool) []fragmentSpan {
	p := st.view.pod
	var out []fragmentSpan
	when := func(objectTime time.Time) (time.Time, string) {
		if history && !objectTime.IsZero() {
			return objectTime, fragment.TimeSourceObject
		}
		return at, fragment.TimeSourceWatch
	}
	nodeAgent := nodeAgentOf(&st.view)
	if !p.scheduled {
		return nil
	}
	disc := st.Trigger
	if !st.emitted(fragment.PhasePodSchedule + "/" + disc) {
		end, src := when(p.scheduledAt)
		svc := p.scheduler
		if svc == "" || svc == "default-scheduler" {
			svc = "kube-scheduler"
		}
		out = append(out, t.stepSpan(st, fragment.PhasePodSchedule, disc, st.TriggerTime, end, src, svc))
		st.StepEnd = notBefore(end, st.TriggerTime)
	}
	if p.hasInit && p.initialized && !st.emitted(fragment.PhasePodInitialize+"/"+disc) {
		end, src := when(p.initializedAt)
		out = append(out, t.stepSpan(st, fragment.PhasePodInitialize, disc, st.StepEnd, end, src, nodeAgent))
		st.StepEnd = notBefore(end, st.StepEnd)
	}
	lastStart := st.StepEnd
	allRunning := len(p.containers) > 0
	for i := range p.containers {
		c := &p.containers[i]
		if !c.running {
			allRunning = false
			continue
		}
		cdisc := c.name + "/" + strconv.Itoa(int(c.restarts))
		if st.emitted(fragment.PhaseContainerStart + "/" + cdisc) {
			continue
		}
		end, src := when(c.startedAt)
		s := t.stepSpan(st, fragment.PhaseContainerStart, cdisc, st.StepEnd, end, src, nodeAgent)
		s.container, s.image = c.name, c.image
		out = append(out, s)
		if s.end.After(lastStart) {
			lastStart = s.end
		}
	}
	if p.ready && !st.emitted(fragment.PhasePodReady+"/"+disc) {
		start := lastStart
		if !allRunning {
			start = st.StepEnd
		}
		end, src := when(p.readyAt)
		out = append(out, t.stepSpan(st, fragment.PhasePodReady, disc, start, end, src, nodeAgent))
	}
	return out
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
		s := t.stepSpan(st, fragment.PhaseImagePull, disc, ev.at.Add(-ev.duration), ev.at, ev.timeSource, ev.source)
		s.container = ev.container
		s.reason = ev.reason
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

func objectService(v *objectView, trigger string) string {
	switch v.kind {
	case "Pod", "Node":
		return nodeAgentOf(v)
	case "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob":
		return "kube-controller-manager"
	}
	if trigger == fragment.TriggerDelete {
		return "kube-controller-manager"
	}
	if v.manager != "" {
		return v.manager
	}
	return "kube-apiserver"
}

// snapshot copies the object's view for a fragment: fragments are rendered
// outside the tracker's lock, while the object's next update (from another
// informer's goroutine) rewrites the state's view. The view's pod and
// annotations are replaced by an update, never changed in place, so a
// shallow copy is enough.
func snapshot(v *objectView) *objectView {
	c := *v
	return &c
}

// notBefore keeps a span from ending before it starts: object timestamps
// are whole seconds and may precede a watch-arrival start.
func notBefore(t, min time.Time) time.Time {
	if t.Before(min) {
		return min
	}
	return t
}

// markQuiet says the object has no status to converge on: the quiet rule
// closes its operations.
func (t *tracker) markQuiet(uid string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.states[uid]; st != nil {
		st.Quiet = true
	}
}

func (t *tracker) takeDroppedEvents() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.droppedEvents
	t.droppedEvents = 0
	return n
}

// nodeAgentOf is the node agent that wrote a pod's or node's status last:
// kubelet, or kwok on a simulated node. It runs the pod, and it finishes
// the pod's deletion, whoever asked for it (see the README).
func nodeAgentOf(v *objectView) string {
	if v.nodeAgent != "" {
		return v.nodeAgent
	}
	return "kubelet"
}
