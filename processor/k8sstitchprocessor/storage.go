package k8sstitchprocessor

import (
	"context"
	"encoding/json"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"
)

// openStorage loads the owner graph and open operations a previous run
// kept, so a restart mid-rollout keeps placing spans into the same traces.
func (p *stitchProcessor) openStorage(ctx context.Context, host component.Host) error {
	ext, ok := host.GetExtensions()[*p.cfg.Storage]
	if !ok {
		return fmt.Errorf("k8sstitch: storage %s is not a configured extension", p.cfg.Storage)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return fmt.Errorf("k8sstitch: extension %s is not a storage extension", p.cfg.Storage)
	}
	c, err := se.GetClient(ctx, component.KindProcessor, p.set.ID, "")
	if err != nil {
		return fmt.Errorf("k8sstitch: storage client: %w", err)
	}
	p.storage = c
	w, ok := c.(storage.Walker)
	if !ok {
		p.set.Logger.Warn("k8sstitch: the storage cannot list its keys; the graph starts empty after a restart")
		return nil
	}
	loaded := 0
	err = w.Walk(ctx, func(_ string, value []byte) ([]*storage.Operation, error) {
		o := &object{}
		if err := json.Unmarshal(value, o); err != nil {
			p.set.Logger.Warn("k8sstitch: ignoring unreadable stored object", zap.Error(err))
			return nil, nil
		}
		p.graph.put(o)
		for _, r := range o.Ops {
			if r.Root && r.Placed && !r.Closed {
				p.openRoots[r] = o
			}
		}
		loaded++
		return nil, nil
	})
	p.set.Logger.Info("k8sstitch: owner graph restored", zap.Int("objects", loaded))
	return err
}

// flushStorage writes the objects changed since the last flush in one batch.
func (p *stitchProcessor) flushStorage(ctx context.Context) {
	if p.storage == nil {
		return
	}
	p.mu.Lock()
	ops := make([]*storage.Operation, 0, len(p.dirty)+len(p.shed))
	for uid, o := range p.dirty {
		b, err := json.Marshal(o)
		if err != nil {
			continue
		}
		ops = append(ops, storage.SetOperation(uid, b))
	}
	for _, uid := range p.shed {
		ops = append(ops, storage.DeleteOperation(uid))
	}
	clear(p.dirty)
	p.shed = p.shed[:0]
	p.mu.Unlock()
	if len(ops) == 0 {
		return
	}
	if err := p.storage.Batch(ctx, ops...); err != nil {
		p.set.Logger.Warn("k8sstitch: cannot persist the owner graph; a restart may split traces", zap.Error(err))
	}
}
