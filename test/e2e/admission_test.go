package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/stats"
	"github.com/kubestitch/kubestitch/test/tracecheck"
)

const (
	webhookCall  = "Call validating webhook"
	reviewSpan   = "admission.review"
	podCreate    = "POST /api/v1/namespaces/{:namespace}/pods"
	podBinding   = "POST /api/v1/namespaces/{:namespace}/pods/{:name}/binding"
	deployCreate = "POST /apis/apps/v1/namespaces/{:namespace}/deployments"
)

// requestRoot is the root of an apiserver request's own spans (the
// authentication wrapper, when there is one), which carries join.by.
func requestRoot(n *waterfall.Node) *waterfall.Node {
	for n.Parent != nil && !n.Parent.IsFragment() {
		n = n.Parent
	}
	return n
}

func joinedBy(n *waterfall.Node) string {
	v, _ := requestRoot(n).Attributes.Get(fragment.KeyJoinBy)
	return v.Str()
}

func durations(tr *waterfall.Trace, name string) []time.Duration {
	var out []time.Duration
	for _, s := range tr.Spans {
		if s.Name == name {
			out = append(out, s.End.Sub(s.Start))
		}
	}
	slices.Sort(out)
	return out
}

// TestAdmissionJoins: with deploy/'s webhook registered on the real
// apiserver and pointed at the gateway's k8sadmission receiver, a
// 50-replica Deployment create yields one trace in which the user's
// create, the ReplicaSet controller's pod creates and the scheduler's
// bindings sit under their objects because of the UID the review carried;
// a webhook that is down fails no request.
func TestAdmissionJoins(t *testing.T) {
	e := harness.StartEnv(t, harness.EnvOptions{Admission: true})
	ctx := t.Context()
	deps := e.Cluster.Client.AppsV1().Deployments("default")
	const replicas = 50
	rollout := func(t *testing.T, name string, n int) *waterfall.Trace {
		t.Helper()
		_, err := deps.Create(ctx, localcluster.DemoDeployment(name, int32(n)), metav1.CreateOptions{})
		require.NoError(t, err, "no write fails")
		tr, _ := e.WaitTrace(t, 2*traceTimeout, byRoot(fragment.PhaseDeploymentRollout, "Deployment default/"+name, "gen:1"), whole(fragment.PhaseDeploymentRollout, expectPodServices, func(tr *waterfall.Trace) bool {
			return complete(n)(tr) && hasAPIRequest(tr, deployCreate, fragment.PhaseDeploymentRollout)
		}))
		check(t, tr, fragment.PhaseDeploymentRollout, expectPodServices)
		return tr
	}

	// The same rollout before the webhook exists: the baseline latency of
	// the same write requests on the same control plane.
	before := rollout(t, "before", replicas)
	// The receiver's own counter; the brace keeps _bad samples out.
	reviews := func() float64 {
		return scrape(t, e.Gateway.MetricsEndpoint).Sum("otelcol_k8sadmission_reviews")
	}
	e.RegisterWebhook(t, e.WebhookURL, e.WebhookCA, func() bool { return reviews() > 0 })

	t.Run("50 replicas joined by UID", func(t *testing.T) {
		tr := rollout(t, "adm", replicas)
		counts := map[string]map[string]int{} // request -> join.by -> n
		for _, s := range tr.Spans {
			switch s.Name {
			case deployCreate, podCreate, podBinding:
				if counts[s.Name] == nil {
					counts[s.Name] = map[string]int{}
				}
				counts[s.Name][joinedBy(s)]++
				hasReview := false
				for _, d := range s.Descendants() {
					// Under the apiserver's webhook call, through its HTTP client span.
					if d.Name == reviewSpan && d.Parent.Parent != nil && d.Parent.Parent.Name == webhookCall {
						hasReview = true
					}
				}
				assert.True(t, hasReview, "%s carries the review span under %q", s.Name, webhookCall)
			}
		}
		assert.Equal(t, map[string]int{fragment.JoinByUID: 1}, counts[deployCreate], "the user's create")
		assert.Equal(t, map[string]int{fragment.JoinByUID: replicas}, counts[podCreate], "the controller's pod creates")
		assert.Equal(t, map[string]int{fragment.JoinByUID: replicas}, counts[podBinding], "the scheduler's bindings")
		for _, s := range tr.Spans {
			switch s.Name {
			case podCreate:
				assert.Equal(t, fragment.PhaseReplicaSetScale, requestRoot(s).Parent.Name)
			case podBinding:
				assert.Equal(t, fragment.PhasePodSchedule, requestRoot(s).Parent.Name)
			}
		}

		// Figures for the note.
		by := map[string]int{}
		guessed := map[string]int{} // request -> n, joined without a review
		writes := 0
		for _, s := range tr.Spans {
			if v, ok := s.Attributes.Get(fragment.KeyJoinBy); ok {
				by[v.Str()]++
				writes++
				if v.Str() != fragment.JoinByUID {
					name := s.Name
					if len(s.Children) > 0 && s.Name == "authentication" {
						name = s.Children[0].Name
					}
					guessed[name]++
				}
			}
		}
		t.Logf("FIGURES admission: joined by guess: %v", guessed)
		t.Logf("FIGURES admission: before the webhook, pod creates in the trace %d of %d, bindings %d of %d", len(durations(before, podCreate)), replicas, len(durations(before, podBinding)), replicas)
		calls := durations(tr, webhookCall)
		t.Logf("FIGURES admission: %d apiserver request traces joined: %v (uid share %.0f%%)", writes, by, 100*float64(by[fragment.JoinByUID])/float64(max(writes, 1)))
		t.Logf("FIGURES admission: webhook call p50 %s p99 %s (n=%d)", stats.Percentile(calls, 0.5), stats.Percentile(calls, 0.99), len(calls))
		for _, name := range []string{podCreate, podBinding, deployCreate} {
			a, b := durations(before, name), durations(tr, name)
			t.Logf("FIGURES admission: %s without webhook p50 %s p99 %s (n=%d), with p50 %s p99 %s (n=%d)", name, stats.Percentile(a, 0.5), stats.Percentile(a, 0.99), len(a), stats.Percentile(b, 0.5), stats.Percentile(b, 0.99), len(b))
		}
	})

	t.Run("webhook down fails no request", func(t *testing.T) {
		port, err := localcluster.FreePort()
		require.NoError(t, err)
		e.RegisterWebhook(t, fmt.Sprintf("https://127.0.0.1:%d/validate", port), e.WebhookCA, nil)
		// Let the apiserver see the new configuration.
		time.Sleep(2 * time.Second)
		n0 := reviews()
		tr := rollout(t, "down", 3)
		assert.Equal(t, n0, reviews(), "nothing reached the receiver")
		assert.Equal(t, 3, tracecheck.Count(tr, fragment.PhasePodReady), "the rollout completed")
		for _, s := range tr.Spans {
			if s.Name == podBinding {
				assert.Equal(t, fragment.JoinByPath, joinedBy(s), "without reviews the path joins")
			}
		}
	})
}
