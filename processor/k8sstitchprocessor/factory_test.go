package k8sstitchprocessor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.uber.org/goleak"

	"github.com/kubestitch/kubestitch/processor/k8sstitchprocessor/internal/metadata"
)

func TestFactoryLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := NewFactory()
	assert.Equal(t, metadata.Type, f.Type())
	p, err := f.CreateTraces(t.Context(), processortest.NewNopSettings(metadata.Type), f.CreateDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, p.Start(t.Context(), componenttest.NewNopHost()))
	assert.True(t, p.Capabilities().MutatesData)
	require.NoError(t, p.Shutdown(t.Context()))
}
