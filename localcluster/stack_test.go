package localcluster

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStackOptionsValidate: options the start-up sequence cannot run are
// refused before anything is built or started, each with what is wrong.
func TestStackOptionsValidate(t *testing.T) {
	gw := StackCollector{Name: "gateway", Config: "gateway.yaml", APIServerSpans: true}
	agent := StackCollector{Name: "agent", ConfigYAML: []byte("receivers: {}"), KubeletSpans: true}
	ok := StackOptions{Bin: "otelcol", Dir: "d", Cluster: Options{Kubelet: &KubeletOptions{}}, Collectors: []StackCollector{gw, agent}}
	require.NoError(t, ok.Validate())
	// No receiver of the apiserver's spans is fine: tracing off, or to
	// Cluster.TracingEndpoint.
	quiet := ok
	quiet.Collectors = []StackCollector{{Name: "gateway", Config: "g.yaml"}}
	quiet.Cluster = Options{TracingEndpoint: "127.0.0.1:4317"}
	require.NoError(t, quiet.Validate())

	for name, c := range map[string]struct {
		o    func(o *StackOptions)
		want []string
	}{
		"no collector":    {func(o *StackOptions) { o.Collectors = nil }, []string{"no collector"}},
		"no binary":       {func(o *StackOptions) { o.Bin = "" }, []string{"no collector binary"}},
		"no dir":          {func(o *StackOptions) { o.Dir = "" }, []string{"no directory"}},
		"unnamed":         {func(o *StackOptions) { o.Collectors[1].Name = "" }, []string{"collector 1 has no name"}},
		"same name twice": {func(o *StackOptions) { o.Collectors[1].Name = "gateway" }, []string{`two collectors named "gateway"`}},
		"no config":       {func(o *StackOptions) { o.Collectors[0].Config = "" }, []string{`collector "gateway": give Config`}},
		"two configs":     {func(o *StackOptions) { o.Collectors[1].Config = "agent.yaml" }, []string{`collector "agent": give Config`}},
		"two apiserver receivers": {func(o *StackOptions) { o.Collectors[1].APIServerSpans = true },
			[]string{"kube-apiserver exports to one collector, not 2 ([gateway agent])"}},
		"receiver and endpoint": {func(o *StackOptions) { o.Cluster.TracingEndpoint = "127.0.0.1:1" },
			[]string{`kube-apiserver exports to collector "gateway" and to Cluster.TracingEndpoint 127.0.0.1:1`}},
		"two kubelet receivers": {func(o *StackOptions) { o.Collectors[0].KubeletSpans = true },
			[]string{"the kubelet exports to one collector, not 2 ([gateway agent])"}},
		"kubelet spans, no kubelet": {func(o *StackOptions) { o.Cluster.Kubelet = nil },
			[]string{`collector "agent" receives the kubelet's spans, but the cluster has no kubelet`}},
		"kubelet receiver and endpoint": {func(o *StackOptions) { o.Cluster.Kubelet.TracingEndpoint = "127.0.0.1:2" },
			[]string{`the kubelet exports to collector "agent" and to Cluster.Kubelet.TracingEndpoint 127.0.0.1:2`}},
		"every error at once": {func(o *StackOptions) { o.Bin, o.Dir, o.Collectors[1].Name = "", "", "" },
			[]string{"no collector binary", "no directory", "collector 1 has no name"}},
	} {
		t.Run(name, func(t *testing.T) {
			o := ok
			o.Collectors = append([]StackCollector(nil), ok.Collectors...)
			k := *ok.Cluster.Kubelet
			o.Cluster.Kubelet = &k
			c.o(&o)
			err := o.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "localcluster: stack: ")
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
			// PrepareStack refuses them too, before building or starting
			// anything.
			s, err := PrepareStack(t.Context(), o)
			assert.Nil(t, s)
			assert.ErrorContains(t, err, c.want[0])
		})
	}
}
