package k8swatchreceiver

import (
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// eventView is what the tracker needs of a Kubernetes Event, from either API.
type eventView struct {
	uid        string
	objectUID  string
	reason     string
	note       string
	source     string
	container  string
	at         time.Time
	timeSource string
	duration   time.Duration
	// warning is an Event of type Warning: something blocks the object.
	warning bool
}

// pulledIn matches the kubelet's `Successfully pulled image "x" in 1.2s (...)`.
var pulledIn = regexp.MustCompile(`pulled image "[^"]*" in ([0-9.]+[a-zµ]+)`)

// maxNoteLen keeps a chatty controller's Event from bloating a span.
const maxNoteLen = 256

func viewEventsV1(e *eventsv1.Event) eventView {
	v := eventView{
		uid:       string(e.UID),
		objectUID: string(e.Regarding.UID),
		reason:    e.Reason,
		note:      e.Note,
		source:    e.ReportingController,
		container: containerFromFieldPath(e.Regarding.FieldPath),
		warning:   e.Type == corev1.EventTypeWarning,
	}
	switch {
	case !e.EventTime.IsZero():
		v.at, v.timeSource = e.EventTime.Time, fragment.TimeSourceEvent
	case e.DeprecatedLastTimestamp.Time.After(time.Time{}):
		v.at, v.timeSource = e.DeprecatedLastTimestamp.Time, fragment.TimeSourceObject
	default:
		v.at, v.timeSource = e.CreationTimestamp.Time, fragment.TimeSourceObject
	}
	return finishEvent(v)
}

func viewCoreEvent(e *corev1.Event) eventView {
	v := eventView{
		uid:       string(e.UID),
		objectUID: string(e.InvolvedObject.UID),
		reason:    e.Reason,
		note:      e.Message,
		source:    e.ReportingController,
		container: containerFromFieldPath(e.InvolvedObject.FieldPath),
		warning:   e.Type == corev1.EventTypeWarning,
	}
	if v.source == "" {
		v.source = e.Source.Component
	}
	switch {
	case !e.EventTime.IsZero():
		v.at, v.timeSource = e.EventTime.Time, fragment.TimeSourceEvent
	case !e.LastTimestamp.IsZero():
		v.at, v.timeSource = e.LastTimestamp.Time, fragment.TimeSourceObject
	default:
		v.at, v.timeSource = e.CreationTimestamp.Time, fragment.TimeSourceObject
	}
	return finishEvent(v)
}

func finishEvent(v eventView) eventView {
	if v.source == "" {
		v.source = "kubelet"
	}
	if m := pulledIn.FindStringSubmatch(v.note); m != nil {
		if d, err := time.ParseDuration(m[1]); err == nil && d > 0 {
			v.duration = d
		}
	}
	v.note = fragment.TruncateUTF8(v.note, maxNoteLen)
	return v
}

// seenAt sharpens a timestamp of whole seconds (the kubelet still writes
// core/v1 Events with lastTimestamp only) with the moment the watch
// delivered the Event: the true time lies in [at, at+1s) and the Event is
// seen after it, so a delivery within that second is the better clock
// (off by the watch latency, not by up to a second). A later delivery (a
// relist, a restart) keeps the second.
func seenAt(v eventView, seen time.Time) eventView {
	if v.timeSource == fragment.TimeSourceObject && !seen.Before(v.at) && seen.Sub(v.at) < time.Second {
		v.at, v.timeSource = seen, fragment.TimeSourceWatch
	}
	return v
}

// containerFromFieldPath reads "spec.containers{name}".
func containerFromFieldPath(p string) string {
	i := strings.IndexByte(p, '{')
	if i < 0 || !strings.HasSuffix(p, "}") {
		return ""
	}
	return p[i+1 : len(p)-1]
}
