package k8sstitchprocessor

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"
)

// decide is the second pass: each span is rewritten, kept as it is,
// dropped as a duplicate, or moved to the waiting buffer. It walks the
// first pass's list, not the batch: most spans go on as they are, and
// the batch is walked again only when some span leaves it.
func (p *stitchProcessor) decide(td ptrace.Traces, now time.Time) {
	var joined, passed, waited, dups int64
	leave := false
	for i := range p.infos {
		info := &p.infos[i]
		ts := info.trace
		if ts == nil {
			f := &p.frags[info.frag]
			if !f.valid {
				p.badSpan("fragment without uid, kind or trigger")
				passed++
				continue
			}
			info.fate = p.decideFragment(info.span, f)
			switch info.fate {
			case fateGo:
				joined++
			case fateDrop:
				dups++
			case fateWait:
				waited++
			}
			leave = leave || info.fate != fateGo
			continue
		}
		if !ts.decided {
			p.tryDecide(ts)
		}
		switch {
		case !ts.decided:
			info.fate, leave = fateWait, true
			waited++
		case ts.join && info.foreign:
			// A span of another service in a trace that joined before it
			// came: it keeps its IDs.
			passed++
		case ts.join:
			if rewriteApp(info.span, ts) {
				joined++
			} else {
				p.badSpan("claims its operation's object span ID")
				passed++
			}
		default:
			passed++
		}
	}
	if leave {
		p.removeLeaving(td, now)
	}
	ctx := context.Background()
	p.tel.K8sstitchSpansJoined.Add(ctx, joined)
	p.tel.K8sstitchSpansPassedThrough.Add(ctx, passed)
	p.tel.K8sstitchSpansWaited.Add(ctx, waited)
	p.tel.K8sstitchSpansDuplicate.Add(ctx, dups)
}

// decideFragment places a fragment into its operation (fateGo), or drops
// it as a duplicate, or lets it wait for its owner's operation.
func (p *stitchProcessor) decideFragment(s ptrace.Span, f *fragInfo) spanFate {
	if f.unneeded {
		return fateDrop
	}
	o := p.objectOf(&f.key) // learnt again if shed since the first pass
	if f.key.reannounced {
		// Learnt, and placed if its owner's operation is known (else its
		// children's placement places it, once that comes), never sent:
		// the gateway that had the operation sent the span itself, and a
		// second copy at the backend would be a duplicate. Not marked
		// seen: if the genuine span comes here, it goes on.
		p.placeFragment(s, o, f.key, false)
		return fateDrop
	}
	if !o.markSeen(s.SpanID()) {
		return fateDrop
	}
	if p.placeFragment(s, o, f.key, false) {
		p.passedOn = append(p.passedOn, seenMark{o.UID, s.SpanID()})
		return fateGo
	}
	return fateWait
}

// removeLeaving takes the dropped and waiting spans out of the batch, in
// the first pass's order.
func (p *stitchProcessor) removeLeaving(td ptrace.Traces, now time.Time) {
	n, shed := 0, 0
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		// The resource and each scope are copied once, for all of their
		// spans that wait, and only if one does.
		var res *waitingResource
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			var scope *waitingScope
			ss.Spans().RemoveIf(func(s ptrace.Span) bool {
				info := &p.infos[n]
				n++
				switch info.fate {
				case fateDrop:
					return true
				case fateWait:
					var fk *fragmentKey
					if info.trace == nil {
						k := p.frags[info.frag].key
						fk = &k
					}
					if scope == nil {
						if res == nil {
							res = newWaitingResource(rs)
						}
						scope = newWaitingScope(res, ss)
					}
					shed += p.wait(scope, s, fk, now)
					return true
				}
				return false
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	if p.shedSince += shed; p.shedSince > 0 && now.Sub(p.shedWarned) >= shedWarnEvery {
		p.set.Logger.Warn("waiting spans released early: the wait buffer is full; raise max_waiting_spans or max_waiting_bytes, or lower wait",
			zap.Int("spans", p.shedSince), zap.Duration("since_last_warning", now.Sub(p.shedWarned)), zap.Int("max_waiting_spans", p.cfg.MaxWaitingSpans), zap.Int("max_waiting_bytes", p.cfg.MaxWaitingBytes))
		p.shedWarned, p.shedSince = now, 0
	}
}

// shedWarnEvery spaces the warnings of a full wait buffer (the spans are
// counted in otelcol_k8sstitch_spans_shed either way).
const shedWarnEvery = 10 * time.Second

// wait moves s into the wait buffer and returns how many spans that
// evicted.
func (p *stitchProcessor) wait(scope *waitingScope, s ptrace.Span, fk *fragmentKey, now time.Time) int {
	ev := p.waiting.put(scope, s, s.TraceID(), fk, now)
	if len(ev) == 0 {
		return 0
	}
	p.tel.K8sstitchSpansShed.Add(context.Background(), int64(len(ev)))
	// An evicted span is not lost: it leaves now, decided as if it had
	// waited out its time, with this batch's released spans.
	p.pendingRelease = append(p.pendingRelease, ev...)
	return len(ev)
}
