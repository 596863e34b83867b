package k8swatchreceiver

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// stepPart is what a step span adds: the container it is about, its
// image, and the Event it was read from.
type stepPart struct {
	noPart
	container, image string
	reason           string
}

// plainStep is the part of a step with nothing to add: shared, never
// written.
var plainStep = &stepPart{}

// stepSpan is a step of st's open operation, recorded as emitted under
// phase and disc so that it goes once.
func stepSpan(st *objectState, phase, disc string, start, end time.Time, src, svc string, p *stepPart) fragmentSpan {
	h := stepHead(st, fragment.LevelStep, phase, phase, disc, start, end, src, svc)
	return fragmentSpan{spanHead: h, part: p}
}

// stepHead is the head of a step span of st's open operation, and records
// it as emitted.
func stepHead(st *objectState, level, name, phase, disc string, start, end time.Time, src, svc string) spanHead {
	v := &st.view
	st.Emitted = append(st.Emitted, phase+"/"+disc)
	h := underObject(head(st, level, name, svc, start, end, src))
	h.spanID = fragment.SpanID(v.uid, phase, disc)
	return h
}

func (p *stepPart) putStatus(_ ptrace.Span, a pcommon.Map) {
	if p.reason != "" {
		a.PutStr(fragment.KeyReason, p.reason)
	}
}

func (p *stepPart) putDetail(a pcommon.Map) {
	if p.container != "" {
		a.PutStr(fragment.KeyContainerName, fragment.TruncateUTF8(p.container, maxAttrLen))
	}
	if p.image != "" {
		a.PutStr("container.image.name", fragment.TruncateUTF8(p.image, maxAttrLen))
	}
}

// blockedPart is what a blocked-step span says of its Warning.
type blockedPart struct {
	noPart
	container       string
	reason, message string
}

// blockedSpan is the span of a step of st's open operation that a Warning
// blocks: named by the step, never counted as it.
func blockedSpan(st *objectState, step, disc string, start, end time.Time, src, svc string, p *blockedPart) fragmentSpan {
	h := stepHead(st, fragment.LevelBlocked, fragment.Blocked(step), step, disc, start, end, src, svc)
	return fragmentSpan{spanHead: h, part: p}
}

func (p *blockedPart) putStatus(s ptrace.Span, a pcommon.Map) {
	s.Status().SetCode(ptrace.StatusCodeError)
	msg := p.reason
	if p.message != "" {
		msg += ": " + p.message
		a.PutStr(fragment.KeyEventMessage, p.message)
	}
	s.Status().SetMessage(msg)
	a.PutStr(fragment.KeyEventReason, p.reason)
}

func (p *blockedPart) putDetail(a pcommon.Map) {
	if p.container != "" {
		a.PutStr(fragment.KeyContainerName, fragment.TruncateUTF8(p.container, maxAttrLen))
	}
}
