package waterfall

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

func TestNodePredicates(t *testing.T) {
	traces := Build(rollout())
	require.Len(t, traces, 2)
	tr := traces[1]
	root := tr.Root
	require.Len(t, root.Children, 3)
	req, failing := root.Children[0], root.Children[2]
	sli := failing.Children[0]

	assert.Equal(t, fragment.LevelObject, root.Level())
	assert.Equal(t, fragment.LevelSLI, sli.Level())
	assert.Empty(t, req.Level(), "an API request is no fragment")

	assert.True(t, root.IsFragment())
	assert.False(t, root.IsSLI())
	assert.True(t, sli.IsSLI())
	assert.False(t, req.IsSLI())

	assert.Empty(t, root.Trigger(), "no trigger attribute")
	root.Attributes.PutStr(fragment.KeyTrigger, "gen:1")
	assert.Equal(t, "gen:1", root.Trigger())

	var names []string
	for _, n := range root.Descendants() {
		names = append(names, n.Name)
	}
	assert.Equal(t, []string{
		"POST /apis/apps/v1/namespaces/default/deployments", "etcd",
		"pod.startup",
		"pod.startup", "pod_startup_latency",
	}, names, "depth first, each before its children")
	assert.Empty(t, sli.Descendants())
}
