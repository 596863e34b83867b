package statestore

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// ErrCannotWalk says the storage extension cannot list its keys, so stored
// records cannot be restored.
var ErrCannotWalk = errors.New("the storage cannot list its keys")

// Store is a component's stored records: written in batches (Put and
// Delete queue, Flush writes them in one storage batch), each in a version
// envelope, and read back by walking. It is safe for concurrent use.
type Store struct {
	client  storage.Client
	version int

	mu      sync.Mutex
	pending map[string][]byte // nil: delete
}

// NewStore keeps records of version in client.
func NewStore(client storage.Client, version int) *Store {
	return &Store{client: client, version: version, pending: map[string][]byte{}}
}

// Put queues rec, encoded now, for the next Flush.
func (s *Store) Put(key string, rec any) error {
	b, err := Encode(s.version, rec)
	if err != nil {
		return err
	}
	s.PutRaw(key, b)
	return nil
}

// PutRaw queues a value in a format of its own (not enveloped), such as
// an OTLP protobuf batch, for the next Flush.
func (s *Store) PutRaw(key string, value []byte) {
	s.mu.Lock()
	s.pending[key] = value
	s.mu.Unlock()
}

// Delete queues the deletion of key for the next Flush.
func (s *Store) Delete(key string) {
	s.mu.Lock()
	s.pending[key] = nil
	s.mu.Unlock()
}

// Flush writes what was queued, in one batch.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return nil
	}
	ops := make([]*storage.Operation, 0, len(s.pending))
	for k, v := range s.pending {
		if v == nil {
			ops = append(ops, storage.DeleteOperation(k))
		} else {
			ops = append(ops, storage.SetOperation(k, v))
		}
	}
	clear(s.pending)
	s.mu.Unlock()
	return s.client.Batch(ctx, ops...)
}

// Walk calls fn with every stored record; a record fn reports as dropped
// (unreadable, of another version) is deleted.
func (s *Store) Walk(ctx context.Context, fn func(key string, value []byte) (drop bool)) error {
	w, ok := s.client.(storage.Walker)
	if !ok {
		return ErrCannotWalk
	}
	return w.Walk(ctx, func(key string, value []byte) ([]*storage.Operation, error) {
		if fn(key, value) {
			return []*storage.Operation{storage.DeleteOperation(key)}, nil
		}
		return nil, nil
	})
}

// Decode reads a record Put wrote (see the package's Decode).
func (s *Store) Decode(value []byte, rec any) error { return Decode(value, s.version, rec) }

// Close flushes and closes the client.
func (s *Store) Close(ctx context.Context) error {
	return errors.Join(s.Flush(ctx), s.client.Close(ctx))
}
