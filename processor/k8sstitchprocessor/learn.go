package k8sstitchprocessor

import (
	"context"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// spanInfo is what the first pass learned of one span, for the second:
// an app span's trace, or a fragment (trace nil) as p.frags[frag]; and
// what the second pass decided.
type spanInfo struct {
	span  ptrace.Span
	trace *traceState
	frag  int32
	fate  spanFate
	// foreign: the span's service is not in join_services; it is never
	// rewritten.
	foreign bool
}

// spanFate is what the second pass does with a span.
type spanFate uint8

const (
	// fateGo: the span goes on, rewritten or as it is.
	fateGo spanFate = iota
	// fateDrop: a duplicate.
	fateDrop
	// fateWait: it moves to the wait buffer.
	fateWait
)

// fragInfo is a fragment's key, and whether it is valid (learnt). It holds
// no *object: a later fragment of the batch may shed that object, and its
// slot then holds another; the second pass looks the object up by UID.
type fragInfo struct {
	key   fragmentKey
	valid bool
	// unneeded: a resumed object span for an operation not held open
	// here, a reannounced trigger of an operation known here; it is
	// dropped like a repeat.
	unneeded bool
}

// minScratchSpans is the per-span scratch always kept.
const minScratchSpans = 8192

// learn is the first pass over a batch: what fragments say about objects
// and operations, and what app spans say about their traces. Learning first
// makes the outcome independent of the order of spans within a batch.
func (p *stitchProcessor) learn(td ptrace.Traces) {
	n := td.SpanCount()
	// What a much bigger batch made room for is given back (trust
	// finding 10), not kept for good.
	if cap(p.infos) > max(4*n, minScratchSpans) {
		p.infos = nil
	}
	if cap(p.frags) > max(4*n, minScratchSpans) {
		p.frags = nil
	}
	p.infos, p.frags = p.infos[:0], p.frags[:0]
	p.traces.startBatch(n)
	// On the stack: resetting it for every span writes no heap pointers.
	var scan spanAttrs
	a := &scan
	var last *traceState
	var unverified int64
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		foreign := !p.joins(rs.Resource().Attributes())
		var resUID string
		if v, ok := rs.Resource().Attributes().Get(fragment.KeyPodUID); ok && !foreign {
			resUID = v.Str()
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				s := spans.At(k)
				a.scan(s)
				quarantined := false
				if a.isFrag && !p.verified(rs.Resource().Attributes(), s) {
					// Anyone can set fragment keys: unsigned, it is an
					// app span of a trace of its own (quarantine).
					a.isFrag, quarantined = false, true
					quarantine(s)
					unverified++
				}
				if a.isFrag {
					f := fragInfo{key: a.fk}
					switch {
					case !a.fk.valid():
					case a.fk.resumed && !p.holdsOpen(a.fk), a.fk.reannounced && p.knowsOp(a.fk):
						f.valid, f.unneeded = true, true
					case p.repeat(s, a.fk), p.retired(a.fk.uid):
						// Dropped before it teaches anything: a replayed
						// old trigger would otherwise push the open
						// operation out of the object's records, or bring
						// a retired object back.
						f.valid, f.unneeded = true, true
					default:
						p.learnFragment(s, a.fk)
						f.valid = true
					}
					p.infos = append(p.infos, spanInfo{span: s, frag: int32(len(p.frags))})
					p.frags = append(p.frags, f)
					continue
				}
				if t, ok := p.opTraces.get(s.TraceID()); ok && t.derived {
					// A sender's span in a trace ID this processor made
					// for an operation (a public hash of a UID): it would
					// sit in that trace beside the genuine spans, maybe
					// under one of their IDs (trust finding 2).
					quarantine(s)
					quarantined = true
					p.badSpan("in an operation's trace ID")
				}
				// Spans of one trace mostly come together: the last trace's
				// state saves a map lookup.
				if last == nil || last.id != s.TraceID() {
					last = p.traces.inBatch(s.TraceID())
				}
				ts := last
				p.infos = append(p.infos, spanInfo{span: s, trace: ts, foreign: foreign})
				if ts.decided {
					continue
				}
				if foreign {
					// A span of a service that does not join: its trace
					// is someone's own (an app's), and passes whole.
					ts.foreign = true
				}
				if s.ParentSpanID().IsEmpty() {
					ts.rootSeen, ts.rootID = true, s.SpanID()
				} else {
					ts.sawParent(s.ParentSpanID())
					if s.Flags()&remoteParentFlags == remoteParentFlags {
						ts.remoteParent = true
					}
				}
				if ts.hint.kind == hintUID || quarantined || foreign {
					continue // the best there is, or none to take
				}
				if h := a.hint(s, resUID); h.kind > ts.hint.kind {
					ts.hint = h
				}
			}
		}
	}
	if unverified > 0 {
		p.tel.K8sstitchFragmentsUnverified.Add(context.Background(), unverified)
		p.set.Logger.Warn("spans with fragment keys but no valid signature left in a trace of their own: a sender without the fragment key, or k8swatch and k8sstitch configured with different keys", zap.Int64("spans", unverified))
	}
}

// remoteParentFlags are the OTLP span flags of a span whose parent is in
// another process (SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE and _IS_REMOTE; the
// OpenTelemetry Go SDK sets them, so the Kubernetes components do).
const remoteParentFlags = 0x100 | 0x200

// joins says whether spans of a resource may join an operation: its
// service.name is in join_services.
func (p *stitchProcessor) joins(res pcommon.Map) bool {
	v, ok := res.Get(fragment.KeyServiceName)
	if !ok {
		return false
	}
	_, ok = p.joinServices[v.Str()]
	return ok
}

// learnFragment puts what a fragment says of its object and operation
// into the graph.
func (p *stitchProcessor) learnFragment(s ptrace.Span, fk fragmentKey) {
	o := p.learnObject(fk.uid, fk.kind, fk.namespace, fk.name, fk.owner)
	r := o.addOp(fk.trigger, fk.triggerTime)
	if fk.traceparent != "" && !r.Placed {
		r.Traceparent = fk.traceparent
	}
	if fk.resumed || fk.level == fragment.LevelTrigger && fk.listed && !fk.reannounced {
		p.closeUnended(o, fk)
	}
	if fk.level == fragment.LevelObject && r.Closed && r.endGuessed {
		r.End, r.endGuessed = s.EndTimestamp().AsTime(), false
	}
	if fk.level == fragment.LevelObject && !r.Closed {
		r.Closed, r.End = true, s.EndTimestamp().AsTime()
		if r.Root {
			delete(p.openRoots, opKey{o.UID, r.Trigger})
			p.tel.K8sstitchOperationsClosed.Add(context.Background(), 1)
		}
		if fk.trigger == fragment.TriggerDelete {
			p.retiring = append(p.retiring, retiree{o.UID, p.now()})
		}
	}
	p.markDirty(o)
}

// repeat says whether a fragment was passed on before: its object has
// its span ID among those seen (trust finding 3).
func (p *stitchProcessor) repeat(s ptrace.Span, fk fragmentKey) bool {
	o := p.graph.get(fk.uid)
	return o != nil && o.hasSeen(s.SpanID())
}

// holdsOpen says whether the object a resumed object span names has an
// open operation here, its own or an earlier one. Only then is the span
// wanted: it closes what its watcher died in, and would otherwise open a
// trace of one span for every object a new watcher listed.
func (p *stitchProcessor) holdsOpen(fk fragmentKey) bool {
	o := p.graph.get(fk.uid)
	if o == nil {
		return false
	}
	for _, r := range o.Ops {
		if !r.Closed && (r.Trigger == fk.trigger || !r.Start.After(fk.triggerTime)) {
			return true
		}
	}
	return false
}

// knowsOp says whether what a reannounced span says is known here (its
// operation, or for an end its operation's end, or a later operation of
// its object): the repeat is dropped. Otherwise this gateway took the
// namespace over from one that died, and learns the operation from it.
func (p *stitchProcessor) knowsOp(fk fragmentKey) bool {
	o := p.graph.get(fk.uid)
	if o == nil {
		return false
	}
	for _, r := range o.Ops {
		// A reannounced end of an operation open here still closes it:
		// this gateway learnt the operation from its reannounced trigger
		// while it was open, and the end is how it learns it ended.
		if r.Trigger == fk.trigger && (fk.level != fragment.LevelObject || r.Closed) ||
			r.Trigger != fk.trigger && r.Start.After(fk.triggerTime) {
			return true
		}
	}
	return false
}

// opKey names an operation by value: its object's UID and its trigger.
type opKey struct{ uid, trigger string }

// learnObject is the graph's object for a fragment's key, learnt (maybe
// shedding another object at max_objects, which it reports).
func (p *stitchProcessor) learnObject(uid, kind, namespace, name, owner string) *object {
	o := p.graph.learn(uid, kind, namespace, name, owner)
	p.reportShed()
	return o
}

// reportShed counts and logs the objects the graph shed; their stored
// records go at the next flush (flushStorage finds them gone).
func (p *stitchProcessor) reportShed() {
	for _, s := range p.graph.takeShed() {
		p.markDirtyUID(s.uid)
		p.tel.K8sstitchObjectsShed.Add(context.Background(), 1)
		p.set.Logger.Warn("object evicted from the owner graph: its later spans may start traces of their own; raise max_objects to avoid this", zap.String("uid", s.uid), zap.String("kind", s.kind))
	}
}

func (p *stitchProcessor) badSpan(reason string) {
	p.tel.K8sstitchBadSpans.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
	p.set.Logger.Debug("span passed through unchanged", zap.String("reason", reason))
}
