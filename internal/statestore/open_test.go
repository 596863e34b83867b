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
	me := component.MustNewID("k8s_stitch")
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

// TestStoreKeepsItsNameAcrossTheRename: state a component stored under its
// old type (k8sstitch, k8swatch/agent) opens under the new one, and the
// other way round: neither the rename nor a config on either name loses it.
func TestStoreKeepsItsNameAcrossTheRename(t *testing.T) {
	ctx := context.Background()
	for _, ids := range [][2]string{{"k8sstitch", "k8s_stitch"}, {"k8swatch/agent", "k8s_watch/agent"}} {
		dir := t.TempDir()
		var before, after component.ID
		require.NoError(t, before.UnmarshalText([]byte(ids[0])))
		require.NoError(t, after.UnmarshalText([]byte(ids[1])))
		c, err := Open(ctx, statestoretest.FileStorage(t, dir), statestoretest.ID, component.KindProcessor, before)
		require.NoError(t, err)
		require.NoError(t, c.Set(ctx, "k", []byte("v")))
		require.NoError(t, c.Close(ctx))

		c, err = Open(ctx, statestoretest.FileStorage(t, dir), statestoretest.ID, component.KindProcessor, after)
		require.NoError(t, err)
		v, err := c.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "v", string(v), "%s reads what %s stored", ids[1], ids[0])
		require.NoError(t, c.Close(ctx))
	}
	assert.Equal(t, component.MustNewID("k8s_namespace"), storedAs(component.MustNewID("k8s_namespace")), "other types keep their ID")
}
