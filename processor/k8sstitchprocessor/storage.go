package k8sstitchprocessor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/kubestitch/kubestitch/internal/statestore"
)

func (p *stitchProcessor) storageError(reason string) {
	p.tel.K8sstitchStorageErrors.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
}

// openStorage loads the owner graph and open operations a previous run
// kept, so a restart mid-rollout keeps placing spans into the same traces.
func (p *stitchProcessor) openStorage(ctx context.Context, host component.Host) error {
	c, err := statestore.Open(ctx, host, *p.cfg.Storage, component.KindProcessor, p.set.ID)
	var damaged *statestore.DamagedError
	if errors.As(err, &damaged) {
		p.storageError("open")
		p.set.Logger.Error("k8sstitch: storage "+p.cfg.Storage.String()+": "+damaged.Error()+"; spans of operations in flight may open traces of their own", zap.Error(damaged.Err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("k8sstitch: %w", err)
	}
	p.storage = &persistence{Store: statestore.NewStore(c, storedVersion), dirty: map[string]struct{}{}}
	// Restored fragments are stored already: record changes from then on.
	defer p.waiting.trackFragmentChanges()
	loaded, waiting := 0, 0
	var pu ptrace.ProtoUnmarshaler
	now := p.now()
	err = p.storage.Walk(ctx, func(key string, value []byte) (drop bool) {
		if strings.HasPrefix(key, waitingKeyPrefix) {
			// A fragment that waited when the last run ended (or was
			// killed): acknowledged upstream, so only this copy is left.
			td, err := pu.UnmarshalTraces(value)
			rs, ss, s, ok := onlySpan(td)
			if err != nil || !ok {
				p.storageError("record")
				p.set.Logger.Warn("k8sstitch: ignoring an unreadable stored waiting fragment", zap.String("key", key))
				return true
			}
			fk, ok := readFragment(s)
			if !ok || !fk.valid() {
				p.storageError("record")
				p.set.Logger.Warn("k8sstitch: ignoring a stored waiting record that is no fragment", zap.String("key", key))
				return true
			}
			// Restored as they were kept, within the buffer's bounds.
			p.pendingRelease = append(p.pendingRelease, p.waiting.put(newWaitingScope(newWaitingResource(rs), ss), s, s.TraceID(), &fk, now)...)
			waiting++
			return false
		}
		stored := &object{}
		if err := p.storage.Decode(value, stored); err != nil {
			p.storageError(statestore.Reason(err))
			p.set.Logger.Warn("k8sstitch: ignoring a stored object it cannot read", zap.String("key", key), zap.Error(err))
			return true
		}
		if why := stored.brokenInvariant(key); why != "" {
			p.storageError("record")
			p.set.Logger.Warn("k8sstitch: ignoring a stored object that breaks an invariant", zap.String("key", key), zap.String("why", why))
			return true
		}
		o := p.graph.put(stored)
		p.reportShed()
		if o == nil {
			return false
		}
		for _, r := range o.Ops {
			if r.Root && r.Placed && !r.Closed {
				// A store can be an hour old (a gateway down, a Lease
				// taken over): the operation gets operation_timeout from
				// now, or its genuine converged span, coming with the
				// relist, would find it timed out and be dropped as the
				// timeout span's duplicate.
				r.watchedSince = now.UnixNano()
				p.openRoots[opKey{o.UID, r.Trigger}] = struct{}{}
			}
		}
		loaded++
		return false
	})
	if errors.Is(err, statestore.ErrCannotWalk) {
		p.set.Logger.Warn("k8sstitch: the storage cannot list its keys; the graph starts empty after a restart")
		return nil
	}
	p.set.Logger.Info("k8sstitch: owner graph restored", zap.Int("objects", loaded), zap.Int("waiting_fragments", waiting))
	return err
}

// onlySpan is the one span of a stored waiting fragment, with its
// resource and scope: false for a record holding no span or more than one,
// wherever in it they are.
func onlySpan(td ptrace.Traces) (ptrace.ResourceSpans, ptrace.ScopeSpans, ptrace.Span, bool) {
	if td.SpanCount() != 1 {
		return ptrace.ResourceSpans{}, ptrace.ScopeSpans{}, ptrace.Span{}, false
	}
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			if ss := rs.ScopeSpans().At(j); ss.Spans().Len() == 1 {
				return rs, ss, ss.Spans().At(0), true
			}
		}
	}
	return ptrace.ResourceSpans{}, ptrace.ScopeSpans{}, ptrace.Span{}, false
}

// brokenInvariant says what of a stored object (under key) breaks what
// the graph relies on, "" for nothing: a record can parse and still be
// damaged, or written by hand, and the emptyDir it lives in would turn a
// panic at start into a crash loop.
func (o *object) brokenInvariant(key string) string {
	switch {
	case o.UID == "" || o.UID != key:
		return "its UID is not its key"
	case len(o.Ops) > maxOpsPerObject:
		return "more operations than an object keeps"
	case len(o.Seen) > maxSeenPerObject:
		return "more seen fragments than an object keeps"
	}
	for _, r := range o.Ops {
		if r == nil {
			return "an empty operation"
		}
		if r.Placed && r.TraceID.IsEmpty() {
			return "a placed operation without a trace"
		}
	}
	return ""
}

// persistence is what k8sstitch stores: the store, and the objects to
// write (or, if they left the graph, delete) at the next flush, by UID.
type persistence struct {
	*statestore.Store
	dirty map[string]struct{}
}

// storedVersion is the version of the stored objects (statestore's
// envelope): raise it when object's or opRecord's stored form changes.
// Waiting fragments are stored as OTLP protobuf, a format of its own that
// stays readable.
const storedVersion = 1

// waitingKeyPrefix keys the stored copies of waiting fragments, by span
// ID; object records are keyed by UID.
const waitingKeyPrefix = "w/"

// flushStorage writes the objects changed since the last flush in one batch.
func (p *stitchProcessor) flushStorage(ctx context.Context) {
	if p.storage == nil {
		return
	}
	p.mu.Lock()
	waitIn, waitOut := p.waiting.takeFragmentChanges()
	for uid := range p.storage.dirty {
		if o := p.graph.get(uid); o != nil {
			_ = p.storage.Put(uid, o)
		} else {
			p.storage.Delete(uid) // shed at max_objects, or a deleted object retired
		}
	}
	var pm ptrace.ProtoMarshaler
	for id, w := range waitIn {
		if b, err := pm.MarshalTraces(w.traces()); err == nil {
			p.storage.PutRaw(waitingKeyPrefix+id.String(), b)
		}
	}
	for id := range waitOut {
		p.storage.Delete(waitingKeyPrefix + id.String())
	}
	clear(p.storage.dirty)
	p.mu.Unlock()
	if err := p.storage.Flush(ctx); err != nil {
		p.set.Logger.Warn("k8sstitch: cannot persist the owner graph; a restart may split traces", zap.Error(err))
	}
}

// markDirty queues o for the next flush to storage.
func (p *stitchProcessor) markDirty(o *object) { p.markDirtyUID(o.UID) }

// markDirtyUID queues an object for the next flush, by UID: the flush
// stores it, or deletes its record if it left the graph.
func (p *stitchProcessor) markDirtyUID(uid string) {
	if p.storage != nil {
		p.storage.dirty[uid] = struct{}{}
	}
}
