package harness

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/promtext"
)

// diagnose says, after a wait timed out, what each component did, so that
// CI's log alone tells which one stalled:
//
//   - the control plane: each workload and pod as the API reports it (did
//     the controllers, the scheduler and the node agents finish?);
//   - the receivers: for each object the API shows done, whether its
//     fragment reached the gateway's output (a missing pod.ready of a Ready
//     pod: the agent's k8swatch; a missing object span of a converged
//     Deployment: the gateway's);
//   - k8sstitch: the fragments exported since the wait began, and the trace
//     each went to (in the awaited one, or elsewhere);
//   - the collectors' own counters and log tails.
func (e *Env) diagnose(t testing.TB, since time.Time, awaited *waterfall.Trace, all []*waterfall.Trace) {
	t.Helper()
	var b strings.Builder
	waited := time.Since(since).Round(time.Second)
	frags := fragmentsByObject(all)
	verdicts := e.describeAPI(&b, since, frags)

	fmt.Fprintf(&b, "\nfragments exported since the wait began (%s ago), and where they went:\n", waited)
	var lines []string
	for _, tr := range all {
		for _, s := range tr.Spans {
			if !s.IsFragment() || s.End.Before(since.Add(-time.Second)) {
				continue
			}
			where := "the awaited trace"
			if awaited == nil || tr.ID != awaited.ID {
				root := "no root"
				if tr.Root != nil {
					root = tr.Root.Name + " " + tr.Root.Object
				}
				where = fmt.Sprintf("trace %s (root %s)", tr.ID, root)
				if awaited != nil && (s.Name == fragment.PhaseReplicaSetScale || s.Name == fragment.PhasePodStartup) {
					verdicts = append(verdicts, fmt.Sprintf("k8sstitch placed %s %s (%s) in %s, not in the awaited trace", s.Name, s.Object, s.Trigger(), where))
				}
			}
			lines = append(lines, fmt.Sprintf("  %s  %-18s %-50s %-8s %s", s.End.Format("15:04:05.000"), s.Name, s.Object, s.Trigger(), where))
		}
	}
	sort.Strings(lines)
	if len(lines) > 60 {
		fmt.Fprintf(&b, "  (%d more before)\n", len(lines)-60)
		lines = lines[len(lines)-60:]
	}
	b.WriteString(strings.Join(lines, "\n"))
	if len(lines) == 0 {
		b.WriteString("  none: the receivers exported nothing (see their logs below)")
	}

	for _, c := range []*localcluster.Collector{e.Gateway, e.Agent} {
		if c != nil {
			fmt.Fprintf(&b, "\n%s counters: %s", c.Name, counters(c.MetricsEndpoint))
		}
	}
	if len(verdicts) == 0 {
		verdicts = []string{"nothing obviously missing: every object the API shows done has its fragments; see the trace above for what the checker rejected"}
	}
	if len(verdicts) > 20 {
		verdicts = append(verdicts[:20], fmt.Sprintf("... and %d more like these", len(verdicts)-20))
	}
	t.Logf("diagnosis after %s:\n- %s\n%s", waited, strings.Join(verdicts, "\n- "), b.String())
	if e.Cluster != nil {
		t.Logf("control plane:%s", e.Cluster.LogTails(20, "kube-controller-manager", "kube-scheduler", "kwok"))
	}
	for _, c := range []*localcluster.Collector{e.Gateway, e.Agent} {
		if c != nil {
			t.Logf("--- %s log tail ---\n%s", c.Name, localcluster.LogTail(c.Log, 20))
		}
	}
}

// describeAPI writes the workloads and pods of the non-system namespaces
// as the API reports them, and returns a verdict for every object the API
// shows done whose fragment is not in the output.
func (e *Env) describeAPI(b *strings.Builder, since time.Time, frags map[string][]*waterfall.Node) []string {
	if e.Cluster == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := e.Cluster.Client
	var verdicts []string
	b.WriteString("the API's view:\n")
	if deps, err := c.AppsV1().Deployments("").List(ctx, metav1.ListOptions{}); err == nil {
		for _, d := range deps.Items {
			if d.Namespace == "kube-system" {
				continue
			}
			s := d.Status
			fmt.Fprintf(b, "  Deployment %s/%s: generation %d, observed %d, replicas %d, updated %d, ready %d, available %d\n",
				d.Namespace, d.Name, d.Generation, s.ObservedGeneration, s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas)
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			done := s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.AvailableReplicas == want && s.Replicas == want
			trig := fragment.TriggerGeneration(d.Generation)
			if done && d.DeletionTimestamp == nil && !hasFragment(frags[string(d.UID)], fragment.PhaseDeploymentRollout, trig) {
				verdicts = append(verdicts, fmt.Sprintf("the gateway's k8swatch stalled: Deployment %s/%s converged at %s per the API, but no deployment.rollout fragment for %s was exported", d.Namespace, d.Name, trig, trig))
			}
		}
	} else {
		fmt.Fprintf(b, "  deployments: %v\n", err)
	}
	if rss, err := c.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{}); err == nil {
		for _, rs := range rss.Items {
			if rs.Namespace == "kube-system" {
				continue
			}
			s := rs.Status
			trig := fragment.TriggerGeneration(rs.Generation)
			fmt.Fprintf(b, "  ReplicaSet %s/%s: generation %d, observed %d, replicas %d, ready %d, available %d; fragments of %s: %s\n",
				rs.Namespace, rs.Name, rs.Generation, s.ObservedGeneration, s.Replicas, s.ReadyReplicas, s.AvailableReplicas, trig, names(frags[string(rs.UID)], trig))
		}
	}
	pods, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		fmt.Fprintf(b, "  pods: %v\n", err)
		return verdicts
	}
	ready, total := 0, 0
	for _, p := range pods.Items {
		if p.Namespace == "kube-system" {
			continue
		}
		total++
		readyAt := podReadyAt(&p)
		if !readyAt.IsZero() {
			ready++
		}
		if total <= maxPodLines {
			fmt.Fprintf(b, "  Pod %s/%s: phase %s, node %q, ready %v, deleting %v; fragments: %s\n",
				p.Namespace, p.Name, p.Status.Phase, p.Spec.NodeName, !readyAt.IsZero(), p.DeletionTimestamp != nil, names(frags[string(p.UID)], "gen:1"))
		}
		if !readyAt.IsZero() && p.CreationTimestamp.After(since.Add(-time.Second)) && !hasFragment(frags[string(p.UID)], fragment.PhasePodReady, "gen:1") {
			verdicts = append(verdicts, fmt.Sprintf("the node agent's k8swatch stalled: pod %s/%s on %q is Ready since %s per the API, but no pod.ready fragment was exported",
				p.Namespace, p.Name, p.Spec.NodeName, readyAt.Format("15:04:05")))
		}
		if readyAt.IsZero() && p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded {
			verdicts = append(verdicts, fmt.Sprintf("the control plane has not finished: pod %s/%s is %s, not Ready, on node %q", p.Namespace, p.Name, p.Status.Phase, p.Spec.NodeName))
		}
	}
	if total > maxPodLines {
		fmt.Fprintf(b, "  (%d more pods)\n", total-maxPodLines)
	}
	fmt.Fprintf(b, "  pods Ready: %d/%d\n", ready, total)
	return verdicts
}

// maxPodLines bounds the pods listed one by one: a large rollout's
// diagnosis stays readable.
const maxPodLines = 40

func podReadyAt(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// fragmentsByObject indexes every fragment of the output by its object's UID.
func fragmentsByObject(all []*waterfall.Trace) map[string][]*waterfall.Node {
	out := map[string][]*waterfall.Node{}
	for _, tr := range all {
		for _, s := range tr.Spans {
			if !s.IsFragment() {
				continue
			}
			if uid, ok := s.Attributes.Get(fragment.KeyUID); ok {
				out[uid.Str()] = append(out[uid.Str()], s)
			}
		}
	}
	return out
}

func hasFragment(frags []*waterfall.Node, name, trig string) bool {
	for _, s := range frags {
		if s.Name == name && s.Trigger() == trig {
			return true
		}
	}
	return false
}

// names lists an object's fragments of one trigger, with their trace.
func names(frags []*waterfall.Node, trig string) string {
	var out []string
	for _, s := range frags {
		if s.Trigger() == trig {
			out = append(out, s.Name+"@"+s.TraceID.String()[:8])
		}
	}
	if len(out) == 0 {
		return "none"
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// counters are the collector's own k8sstitch and k8swatch counters, as it
// serves them.
func counters(endpoint string) string {
	if endpoint == "" {
		return "-"
	}
	samples, err := promtext.Scrape(context.Background(), &http.Client{Timeout: 5 * time.Second}, "http://"+endpoint+"/metrics")
	if err != nil {
		return err.Error()
	}
	sums := map[string]float64{}
	for _, s := range samples {
		if strings.HasPrefix(s.Name, "otelcol_k8s") {
			sums[s.Name] += s.Value
		}
	}
	var out []string
	for n, v := range sums {
		out = append(out, fmt.Sprintf("%s=%g", strings.TrimPrefix(n, "otelcol_"), v))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}
