package statestore

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"

	"github.com/kubestitch/kubestitch/internal/statestore/statestoretest"
)

// TestDamagedFileIsNotFatal: a truncated store (a kill mid-write, a full
// disk) opens as a DamagedError, not a configuration error.
func TestDamagedFileIsNotFatal(t *testing.T) {
	dir := t.TempDir()
	me := component.MustNewID("k8sstitch")
	c, err := Open(context.Background(), statestoretest.FileStorage(t, dir), statestoretest.ID, component.KindProcessor, me)
	require.NoError(t, err)
	require.NoError(t, c.Set(context.Background(), "k", []byte("v")))
	require.NoError(t, c.Close(context.Background()))
	statestoretest.Damage(t, dir)

	h := statestoretest.FileStorage(t, dir)
	_, err = Open(context.Background(), h, statestoretest.ID, component.KindProcessor, me)
	var damaged *DamagedError
	require.True(t, errors.As(err, &damaged), "a damaged file: %v", err)

	_, err = Open(context.Background(), h, component.MustNewID("nope"), component.KindProcessor, me)
	require.Error(t, err)
	assert.False(t, errors.As(err, &damaged), "an extension that is not configured is a configuration error")
}
