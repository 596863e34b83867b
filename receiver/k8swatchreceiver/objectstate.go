package k8swatchreceiver

import (
	"time"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

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
	// announced is when the operation was last sent again (reannounce);
	// zero until a tick first sees it open, or ended.
	announced time.Time
	// ended is when the operation's object span ended it.
	ended time.Time
	sli   *podSLI
	// eventSteps counts the steps Events made for the open operation
	// (blocked steps, image pulls), at most maxEventSteps: anyone who may
	// write Events in the object's namespace could otherwise grow
	// Emitted, and the stored record, without bound (trust finding 5).
	eventSteps int
}

// maxEventSteps bounds the steps Events make for one operation: a pod
// with many containers pulls once each, and a blocked operation has one
// span per step and reason.
const maxEventSteps = 64

// spanEvent is a Kubernetes Event kept for the object span of the open
// operation.
type spanEvent struct {
	name    string
	at      time.Time
	message string
	source  string
}

// podSLI gathers the phases of clusterloader2's PodStartupLatency for one
// pod start, as clusterloader2 takes them: create is the creation
// timestamp, schedule the scheduler's Scheduled Event, run the last
// container's startedAt, watch the moment this watch delivered the pod in
// phase Running. The Event and the pod come by two watches in either
// order, so the spans go once both are in (or sliScheduleWait after the
// pod ran). It is not stored: a restart forgets the pods it was waiting
// on, and a pod first seen running (at a relist, or by a watcher started
// after it ran) is not measured: its watch time is not the moment it ran.
type podSLI struct {
	// The four phases, each from the most precise observation there was
	// (sli.go): create, schedule and run are zero until known.
	create, schedule, run, watch time.Time
	scheduleSource               string
	// bound is when the watch delivered the pod bound but not yet
	// running; initialized, when it delivered its init containers done.
	bound, initialized time.Time
	// pullStart and pullEnd span the pod's image pulls (the kubelet's
	// Pulled Events, pulls of them), which the SLI leaves out.
	pullStart, pullEnd time.Time
	pulls              int
	sent               bool
}

// sliSent marks a pod whose SLI spans went (or never will): its phases
// are dropped. Shared, never written.
var sliSent = &podSLI{sent: true}

func (s *objectState) emitted(key string) bool {
	for _, e := range s.Emitted {
		if e == key {
			return true
		}
	}
	return false
}

// startOpen says the object's start or spec-change operation is under way:
// the operations a Warning can block, and an owner's giving up can end.
func (st *objectState) startOpen() bool {
	return !st.Done && st.Trigger != "" && st.Trigger != fragment.TriggerDelete
}

// compact drops, once an operation is done, what only an open one needs:
// the steps it emitted, the pod's conditions and containers, the view's
// detail (its times, manager, annotations), and a sent SLI's phases. The objects of a cluster at rest
// are nearly all done, so this is most of the tracker's memory
// (BenchmarkGatewayMemory150kPods). The next observation brings a full
// view again. A pod whose SLI still waits for its Scheduled Event keeps
// its view: the fallback reads its PodScheduled condition.
func (st *objectState) compact() {
	st.Emitted, st.eventSteps = nil, 0
	if st.sli == nil || st.sli.sent {
		// Replaced, not cleared: a fragment in flight may share them
		// (snapshot).
		st.view.pod, st.view.viewDetail = nil, restingDetail
	}
}
