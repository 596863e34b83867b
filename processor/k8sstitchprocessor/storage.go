package k8sstitchprocessor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
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
	p.storage = c
	// Restored fragments are stored already: record changes from then on.
	defer p.waiting.trackFragmentChanges()
	w, ok := c.(storage.Walker)
	if !ok {
		p.set.Logger.Warn("k8sstitch: the storage cannot list its keys; the graph starts empty after a restart")
		return nil
	}
	loaded, waiting := 0, 0
	var pu ptrace.ProtoUnmarshaler
	now := p.now()
	err = w.Walk(ctx, func(key string, value []byte) ([]*storage.Operation, error) {
		if strings.HasPrefix(key, waitingKeyPrefix) {
			// A fragment that waited when the last run ended (or was
			// killed): acknowledged upstream, so only this copy is left.
			td, err := pu.UnmarshalTraces(value)
			if err != nil || td.SpanCount() != 1 {
				p.storageError("record")
				p.set.Logger.Warn("k8sstitch: ignoring an unreadable stored waiting fragment", zap.String("key", key))
				return []*storage.Operation{storage.DeleteOperation(key)}, nil
			}
			rs := td.ResourceSpans().At(0)
			ss := rs.ScopeSpans().At(0)
			s := ss.Spans().At(0)
			if fk, ok := readFragment(s); ok && fk.valid() {
				// Restored as they were kept, within the buffer's bounds.
				p.pendingRelease = append(p.pendingRelease, p.waiting.put(newWaitingScope(newWaitingResource(rs), ss), s, s.TraceID(), &fk, now)...)
				waiting++
			}
			return nil, nil
		}
		stored := &object{}
		if err := statestore.Decode(value, storedVersion, stored); err != nil {
			reason := "record"
			var ve *statestore.VersionError
			if errors.As(err, &ve) {
				reason = "version"
			}
			p.storageError(reason)
			p.set.Logger.Warn("k8sstitch: ignoring a stored object it cannot read", zap.String("key", key), zap.Error(err))
			return []*storage.Operation{storage.DeleteOperation(key)}, nil
		}
		o := p.graph.put(stored)
		p.reportShed()
		if o == nil {
			return nil, nil
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
		return nil, nil
	})
	p.set.Logger.Info("k8sstitch: owner graph restored", zap.Int("objects", loaded), zap.Int("waiting_fragments", waiting))
	return err
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
	ops := make([]*storage.Operation, 0, len(p.dirty)+len(waitIn)+len(waitOut))
	for uid := range p.dirty {
		o := p.graph.get(uid)
		if o == nil {
			// Shed at max_objects, or a deleted object retired.
			ops = append(ops, storage.DeleteOperation(uid))
			continue
		}
		b, err := statestore.Encode(storedVersion, o)
		if err != nil {
			continue
		}
		ops = append(ops, storage.SetOperation(uid, b))
	}
	var pm ptrace.ProtoMarshaler
	for id, w := range waitIn {
		b, err := pm.MarshalTraces(w.traces())
		if err != nil {
			continue
		}
		ops = append(ops, storage.SetOperation(waitingKeyPrefix+id.String(), b))
	}
	for id := range waitOut {
		ops = append(ops, storage.DeleteOperation(waitingKeyPrefix+id.String()))
	}
	clear(p.dirty)
	p.mu.Unlock()
	if len(ops) == 0 {
		return
	}
	if err := p.storage.Batch(ctx, ops...); err != nil {
		p.set.Logger.Warn("k8sstitch: cannot persist the owner graph; a restart may split traces", zap.Error(err))
	}
}
