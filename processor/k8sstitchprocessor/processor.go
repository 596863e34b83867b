package k8sstitchprocessor

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.uber.org/zap"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/processor/k8sstitchprocessor/internal/metadata"
)

// stitchProcessor joins fragments and app spans into one trace per
// operation. The data path: fragment -> ownerGraph -> operation (placement)
// -> rewrite; app spans: hint -> object -> operation -> rewrite.
//
// One mutex guards the state: the work under it is map lookups and a few
// attribute writes per span, and the next consumer is called outside it.
type stitchProcessor struct {
	cfg  *Config
	set  processor.Settings
	next consumer.Traces
	tel  *metadata.TelemetryBuilder
	now  func() time.Time

	mu      sync.Mutex
	graph   *ownerGraph
	traces  *traceTable
	waiting *waitBuffer
	// openRoots are the root operations not yet closed, for the timeout,
	// by value: an object's slot is reused when it is shed, so a pointer
	// into it would name another object's operation.
	openRoots map[opKey]struct{}
	// unended are operations a newer trigger of their object closed
	// before their own object span came (supersede.go), oldest first.
	unended []unended
	// infos and frags are the first pass's result, reused from batch to
	// batch.
	infos []spanInfo
	frags []fragInfo
	// pendingRelease are spans evicted from a full buffer, sent with the
	// next batch.
	pendingRelease []*waitingSpan
	// shedWarned is when the last "buffer full" warning was logged, and
	// shedSince the spans released early since: a flood logs once per
	// shedWarnEvery, not once per batch.
	shedWarned time.Time
	shedSince  int
	// retiring are deleted objects whose deletion closed, oldest first:
	// they leave the graph keepJoinedFor waits later (late requests and
	// dependents' fragments still find them until then).
	retiring []retiree
	// tombstones are the UIDs of objects retired not long ago: a
	// replayed fragment of one would bring it back, and
	// operation_timeout would end the new operation in an error in a
	// trace that had finished fine (trust finding 3). opTraces are the
	// operation traces opened here (trust findings 2 and 4).
	tombstones recentMap[string, struct{}]
	opTraces   recentMap[pcommon.TraceID, opTrace]
	// passedOn are the fragments of the batch in hand that go on, by
	// object UID: marked seen, to be unmarked if the next consumer
	// refuses the batch (its sender retries it).
	passedOn []seenMark

	// keys verify fragments: the fragment key, and during a rotation the
	// previous one.
	keys fragment.Keys
	// joinServices are the services whose spans may join an operation
	// (join_services).
	joinServices map[string]struct{}

	// storage keeps the graph and waiting fragments (nil without storage).
	storage *persistence
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

var _ processor.Traces = (*stitchProcessor)(nil)

// keepJoinedFor is how many waits a joined trace's decision stays known
// after its last spans came: its late spans (another process's part,
// exported on its own schedule) come within about one wait.
const keepJoinedFor = 3

func newStitchProcessor(set processor.Settings, cfg *Config, next consumer.Traces) (*stitchProcessor, error) {
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	p := &stitchProcessor{
		cfg: cfg, set: set, next: next, tel: tel, now: time.Now,
		graph:        newOwnerGraph(cfg.MaxObjects),
		traces:       newTraceTable(cfg.MaxObjects*4, keepJoinedFor*cfg.Wait),
		waiting:      newWaitBuffer(cfg.MaxWaitingSpans, cfg.MaxWaitingBytes),
		openRoots:    map[opKey]struct{}{},
		tombstones:   newRecentMap[string, struct{}](tombstoneFor, maxTombstones),
		opTraces:     newRecentMap[pcommon.TraceID, opTrace](opTraceFor, maxOpTraces),
		joinServices: make(map[string]struct{}, len(cfg.JoinServices)),
	}
	for _, svc := range cfg.JoinServices {
		p.joinServices[svc] = struct{}{}
	}
	return p, nil
}

func (p *stitchProcessor) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

func (p *stitchProcessor) Start(ctx context.Context, host component.Host) error {
	if err := p.loadKey(); err != nil {
		return err
	}
	if p.cfg.Storage != nil {
		if err := p.openStorage(ctx, host); err != nil {
			return err
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Go(func() { p.tickLoop(runCtx) })
	return nil
}

func (p *stitchProcessor) Shutdown(ctx context.Context) error {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	// Whatever still waits leaves as it is: nothing is lost at shutdown.
	p.mu.Lock()
	out := newSpanOut()
	for _, w := range p.waiting.expired(p.now().Add(365*24*time.Hour), 0) {
		p.releaseExpired(w, out)
	}
	p.mu.Unlock()
	if out.td.SpanCount() > 0 {
		_ = p.next.ConsumeTraces(ctx, out.td)
	}
	p.flushStorage(ctx)
	if p.storage != nil {
		return p.storage.Close(ctx)
	}
	return nil
}

func (p *stitchProcessor) tickLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.Wait / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			out := p.tick()
			if out.SpanCount() > 0 {
				if err := p.next.ConsumeTraces(ctx, out); err != nil {
					p.set.Logger.Warn("next consumer refused released spans", zap.Int("spans", out.SpanCount()), zap.Error(err))
				}
			}
			p.flushStorage(ctx)
		}
	}
}

// tick releases what waited too long and closes operations that timed out.
func (p *stitchProcessor) tick() ptrace.Traces {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	out := newSpanOut()
	for _, w := range p.waiting.expired(now, p.cfg.Wait) {
		if w.frag == nil && w.elem != nil && now.Sub(w.first) < p.cfg.RootWait && p.traces.awaitsRoot(w.orig) {
			p.waiting.extend(w, now)
			continue
		}
		p.releaseExpired(w, out)
	}
	p.timeouts(now, out)
	p.endSuperseded(now, out)
	p.retire(now)
	p.tel.K8sstitchObjectsTracked.Record(context.Background(), int64(p.graph.len()))
	return out.td
}

func (p *stitchProcessor) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	p.mu.Lock()
	now := p.now()
	released := newSpanOut()
	p.passedOn = p.passedOn[:0]
	p.learn(td)
	p.decide(td, now)
	p.traces.settle(now)
	p.retryWaiting(released)
	// Hold no reference to the batch once it is gone: the garbage
	// collector would keep it, and mark it on every cycle.
	clear(p.infos)
	clear(p.frags)
	passedOn := p.passedOn
	p.mu.Unlock()
	var err error
	if td.SpanCount() > 0 {
		err = p.next.ConsumeTraces(ctx, td)
	}
	if err != nil && len(passedOn) > 0 {
		// The commit point: a refused batch comes again from its sender,
		// and its fragments must not then be dropped as duplicates.
		p.mu.Lock()
		for _, m := range passedOn {
			if o := p.graph.get(m.uid); o != nil {
				o.unmarkSeen(m.id)
				p.markDirty(o)
			}
		}
		p.mu.Unlock()
	}
	// Released spans were acknowledged to their senders long ago: they
	// go on in a call of their own, so a refusal of this batch, which
	// its sender retries, does not take them with it.
	if released.td.SpanCount() > 0 {
		if rerr := p.next.ConsumeTraces(ctx, released.td); rerr != nil {
			p.set.Logger.Warn("next consumer refused released spans", zap.Int("spans", released.td.SpanCount()), zap.Error(rerr))
		}
	}
	// Persist after the spans went on: a crash in between replays a known
	// object rather than losing its place in the trace.
	p.flushStorage(ctx)
	return err
}

// seenMark is a fragment marked seen on its object.
type seenMark struct {
	uid string
	id  pcommon.SpanID
}
