package k8swatchreceiver

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"

	"github.com/kubestitch/kubestitch/internal/statestore"
)

// storedVersion is the version of the stored object states: raise it
// when objectState's stored form changes.
const storedVersion = 1

// persistence keeps the tracker's object states in the storage extension,
// so a restart neither repeats nor loses a step. A nil *persistence (no
// storage) does nothing.
type persistence struct {
	store  *statestore.Store
	logger *zap.Logger
	// storageError counts a storage error by reason.
	storageError func(reason string)
	// restored are the stored states read at start, by UID, until their
	// object is first listed.
	mu       sync.Mutex
	restored map[string][]byte
}

// openPersistence opens the storage of cfg. A damaged store is logged and
// counted, and the receiver goes on without storage (nil, nil): a
// crash-looping pod would be worse than steps emitted again.
func openPersistence(ctx context.Context, host component.Host, cfg *Config, set receiver.Settings, storageError func(string)) (*persistence, error) {
	c, err := statestore.Open(ctx, host, *cfg.Storage, component.KindReceiver, set.ID)
	var damaged *statestore.DamagedError
	switch {
	case errors.As(err, &damaged):
		storageError("open")
		set.Logger.Error("k8swatch: storage "+cfg.Storage.String()+": "+damaged.Error()+"; steps already emitted may be emitted again", zap.Error(damaged.Err))
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("k8swatch: %w", err)
	}
	return &persistence{store: statestore.NewStore(c, storedVersion), logger: set.Logger, storageError: storageError}, nil
}

// load reads every stored state once, by walking the store, for restore
// to hand out as objects are first listed.
func (p *persistence) load(ctx context.Context) {
	restored := map[string][]byte{}
	err := p.store.Walk(ctx, func(uid string, value []byte) bool {
		restored[uid] = value
		return false
	})
	p.mu.Lock()
	p.restored = restored
	p.mu.Unlock()
	if err != nil {
		p.logger.Warn("k8swatch: cannot read the stored states; steps already emitted may be emitted again", zap.Error(err))
	}
}

// persist writes the states of t changed since the last call in one
// batch: after the fragments they emitted went on, so a crash in between
// repeats a step (which k8sstitch drops as a duplicate) rather than lose
// one.
func (p *persistence) persist(ctx context.Context, t *tracker) {
	if p == nil {
		return
	}
	t.takeChanges(func(uid string, st *objectState) {
		if st == nil {
			p.store.Delete(uid)
			return
		}
		if err := p.store.Put(uid, st); err != nil {
			p.logger.Warn("k8swatch: cannot encode object state", zap.String("uid", uid), zap.Error(err))
		}
	})
	if err := p.store.Flush(ctx); err != nil {
		p.logger.Warn("k8swatch: cannot persist object states; a restart may repeat their steps", zap.Error(err))
	}
}

// restore hands uid's stored state, if any, to t, once.
func (p *persistence) restore(uid string, t *tracker) {
	if p == nil {
		return
	}
	p.mu.Lock()
	b, ok := p.restored[uid]
	delete(p.restored, uid)
	p.mu.Unlock()
	if !ok {
		return
	}
	st := &objectState{}
	if err := p.store.Decode(b, st); err != nil {
		p.storageError(statestore.Reason(err))
		p.logger.Warn("k8swatch: ignoring stored state it cannot read", zap.String("uid", uid), zap.Error(err))
		return
	}
	t.restore(uid, st)
}

func (p *persistence) close(ctx context.Context) error {
	return p.store.Close(ctx)
}
