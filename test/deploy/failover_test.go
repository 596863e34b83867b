package deploy

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/test/tracecheck"
)

// atBackend is an operation's trace as a backend shows it: the spans of
// every gateway with its trace ID, together (a backend keys traces by ID,
// not by the collector that sent them), how many each gateway sent, and
// the gateways that sent its root.
// After a gateway's death an operation in flight is sent in two parts: by
// the dead gateway until it died, and by the namespace's new owner after.
func (b *backends) atBackend(phase, object, trigger string) (*waterfall.Trace, map[string]int, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var id *waterfall.Trace
	var rootsAt []string
	for gw, s := range b.sinks {
		if tr := tracecheck.Find(waterfall.Build(s.Traces()), phase, object, trigger); tr != nil {
			id, rootsAt = tr, append(rootsAt, gw)
		}
	}
	if id == nil {
		return nil, nil, nil
	}
	all, sent := ptrace.NewTraces(), map[string]int{}
	for gw, s := range b.sinks {
		td := s.Traces()
		td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
			rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
				ss.Spans().RemoveIf(func(sp ptrace.Span) bool { return sp.TraceID() != id.ID })
				sent[gw] += ss.Spans().Len()
				return ss.Spans().Len() == 0
			})
			return rs.ScopeSpans().Len() == 0
		})
		td.ResourceSpans().MoveAndAppendTo(all.ResourceSpans())
	}
	for _, tr := range waterfall.Build(all) {
		if tr.ID == id.ID {
			return tr, sent, rootsAt
		}
	}
	return nil, sent, rootsAt
}

// deathReport is what an operation in flight kept through a gateway's
// death, as a backend shows it.
type deathReport struct {
	death     string
	whole     bool
	podsReady int
	rootsAt   []string
	sentBy    map[string]int
	problems  []string
	orphans   []string
	// lostStep: whole but for the end of one ReplicaSet scale step, which
	// reached no gateway's backend; orphaned spans sat under it.
	lostStep   bool
	orphaned   int
	recovered  time.Duration
	spansTotal int
}

func (r deathReport) String() string {
	by := make([]string, 0, len(r.sentBy))
	for gw, n := range r.sentBy {
		if n > 0 {
			by = append(by, fmt.Sprintf("%s %d", gw, n))
		}
	}
	verdict := "whole"
	switch {
	case r.lostStep:
		verdict = fmt.Sprintf("whole but for one ReplicaSet step's end, lost with the Lease holder (%d spans without their parent)", r.orphaned)
	case !r.whole:
		verdict = "NOT whole: " + strings.Join(r.problems, "; ")
	}
	return fmt.Sprintf("%s: %s at the backend (%d spans; sent by %s), %d of 3 pod.ready, root at %v, recovered in %v",
		r.death, verdict, r.spansTotal, strings.Join(by, ", "), r.podsReady, r.rootsAt, r.recovered.Round(100*time.Millisecond))
}

// inFlightReport checks the rollout of ns with trigger that was in flight
// when a gateway died: whole at the backend (the shared checker, its
// apiserver spans included), its root sent by exactly one gateway.
func inFlightReport(be *backends, death, ns, trigger string, replicas int, recovered time.Duration) deathReport {
	object := "Deployment " + ns + "/web"
	r := deathReport{death: death, recovered: recovered}
	tr, sent, rootsAt := be.atBackend(fragment.PhaseDeploymentRollout, object, trigger)
	r.sentBy, r.rootsAt = sent, rootsAt
	if tr == nil {
		r.problems = []string{"no trace with the rollout's root at any gateway"}
		return r
	}
	r.spansTotal = len(tr.Spans)
	r.podsReady = tracecheck.Count(tr, fragment.PhasePodReady)
	expect := tracecheck.Expect{Root: fragment.PhaseDeploymentRollout, Services: []string{"apiserver", "kube-scheduler", "kube-controller-manager"}, ClockTolerance: time.Second}
	r.problems = tracecheck.Check(tr, expect)
	if r.podsReady != replicas {
		r.problems = append(r.problems, fmt.Sprintf("%d of %d pod.ready", r.podsReady, replicas))
	}
	if len(r.rootsAt) != 1 {
		r.problems = append(r.problems, fmt.Sprintf("the root sent by %d gateways", len(r.rootsAt)))
	}
	r.whole = len(r.problems) == 0
	if !r.whole {
		r.orphans = be.explainOrphans(tr)
		r.lostStep = len(r.problems) == len(tr.Orphans) && lostStepEnd(be, tr)
		r.orphaned = len(tr.Orphans)
	}
	return r
}

// lostStepEnd says whether every orphan of tr misses the same parent, the
// end of a ReplicaSet's scale step (a ReplicaSet's trigger is among them),
// and that span reached no gateway's backend: what the combined death (the
// Lease holder that owns the namespace) costs when the ReplicaSet moved
// to its next step before the new holder listed it (deploy/README.md,
// Failover).
func lostStepEnd(be *backends, tr *waterfall.Trace) bool {
	parent, rsTrigger := tr.Orphans[0].ParentID, false
	for _, o := range tr.Orphans {
		if o.ParentID != parent {
			return false
		}
		if o.Name == fragment.PhaseTrigger && strings.HasPrefix(o.Object, "ReplicaSet ") {
			rsTrigger = true
		}
	}
	if !rsTrigger {
		return false
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	for _, s := range be.sinks {
		for _, sp := range s.Spans() {
			if sp.Span.SpanID() == parent {
				return false
			}
		}
	}
	return true
}

// explainOrphans says, for each parent the trace misses, where a span
// with that ID went (another trace, at which gateway) or that none came,
// and lists every fragment of the orphans' objects at every gateway with
// its trigger: what a failed failover check needs to be read.
func (b *backends) explainOrphans(tr *waterfall.Trace) []string {
	if tr == nil || len(tr.Orphans) == 0 {
		return nil
	}
	missing, objects := map[string]bool{}, map[string]bool{}
	for _, o := range tr.Orphans {
		missing[o.ParentID.String()] = true
		if o.Object != "" {
			objects[o.Object] = true
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	found := map[string]bool{}
	for gw, s := range b.sinks {
		for _, t := range waterfall.Build(s.Traces()) {
			for _, n := range t.Spans {
				if missing[n.SpanID.String()] {
					found[n.SpanID.String()] = true
					out = append(out, fmt.Sprintf("parent %s is %s %s at %s in trace %s", n.SpanID, n.Name, n.Object, gw, n.TraceID))
				}
				if objects[n.Object] && (n.Name == fragment.PhaseTrigger || n.Attributes.Len() > 0 && isObjectSpan(n)) {
					trig, _ := n.Attributes.Get(fragment.KeyTrigger)
					out = append(out, fmt.Sprintf("  %s: %s %s %s id %s parent %s trace %s", gw, n.Object, n.Name, trig.AsString(), n.SpanID, n.ParentID, n.TraceID))
				}
			}
		}
	}
	for id := range missing {
		if !found[id] {
			out = append(out, fmt.Sprintf("parent %s reached no gateway's backend", id))
		}
	}
	return out
}

func isObjectSpan(n *waterfall.Node) bool {
	l, _ := n.Attributes.Get(fragment.KeyLevel)
	return l.Str() == fragment.LevelObject
}

// TestGatewayFailover is the failover test in its 10-run form (make
// failover-test; KUBESTITCH_FAILOVER_RUNS runs of each death on the
// install of TestInstallOnContainerd, which runs each once in make test).
func TestGatewayFailover(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("KUBESTITCH_FAILOVER_RUNS"))
	if testing.Short() || runs == 0 {
		t.Skip("make failover-test (KUBESTITCH_FAILOVER_RUNS=10); make test runs each death once in TestInstallOnContainerd")
	}
	in := startContainerdInstall(t)
	reports := in.deaths(t, runs)
	byDeath := map[string][]deathReport{}
	var order []string
	for _, r := range reports {
		if byDeath[r.death] == nil {
			order = append(order, r.death)
		}
		byDeath[r.death] = append(byDeath[r.death], r)
	}
	for _, d := range order {
		whole := 0
		var lines []string
		for i, r := range byDeath[d] {
			if r.whole {
				whole++
			}
			lines = append(lines, fmt.Sprintf("run %d: %s", i+1, r))
		}
		t.Logf("%s: %d of %d whole\n  %s", d, whole, len(byDeath[d]), strings.Join(lines, "\n  "))
	}
}

func (in *containerdInstall) roll(t *testing.T, ns string) string {
	in.gen[ns]++
	setImage(t, in.cluster, ns, in.images[in.gen[ns]%2])
	return fmt.Sprintf("gen:%d", in.gen[ns]+1)
}

// holder is the k8s_watch Lease holder, "" when unknown: callers poll.
func (in *containerdInstall) holder(t *testing.T) string {
	l, err := in.cluster.Client.CoordinationV1().Leases("kubestitch").Get(t.Context(), "kubestitch-k8swatch", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

// inFlight starts a rollout in ns and returns its trigger once it is
// 500 ms under way: the moment each death strikes.
func (in *containerdInstall) inFlight(t *testing.T, ns string) string {
	trigger := in.roll(t, ns)
	time.Sleep(500 * time.Millisecond)
	return trigger
}

// afterDeath measures what the rollout in flight kept, as a backend shows
// it (whole or not, pods, spans lost: the table of make failover-test;
// #33's target of 10 whole in 10 is not met yet, so it is reported, not
// failed on), checks it never comes out as two traces (its root sent by
// one gateway at most), then that the next rollout of ns, and one in
// every other namespace, is whole at one gateway other than not.
func (in *containerdInstall) afterDeath(t *testing.T, death, ns, trigger, not string, killed time.Time) deathReport {
	recovered := time.Since(killed)
	waitConverged(t, in.cluster, ns)
	var r deathReport
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		r = inFlightReport(in.be, death, ns, trigger, 3, recovered)
		if r.whole || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("the rollout in flight: %s", r)
	if len(r.orphans) > 0 {
		t.Logf("its orphans:\n  %s", strings.Join(r.orphans, "\n  "))
	}
	assert.LessOrEqual(t, len(r.rootsAt), 1, "the rollout in flight is one trace: %s", r)
	in.owner[ns] = wholeAtOneGateway(t, in.be, ns, in.roll(t, ns), 3, not)
	for _, n := range in.namespaces {
		if n != ns {
			in.owner[n] = wholeAtOneGateway(t, in.be, n, in.roll(t, n), 3, not)
		}
	}
	return r
}

const combinedDeath = "Lease holder, owner of the namespace, lost with its pod"

// deaths runs, runs times, each death mid-rollout: the collector of the
// gateway that owns the namespace SIGKILLed (the kubelet restarts it in
// place), that gateway lost with its pod (deleted at once, as with its
// node; the Deployment replaces it), and the k8s_watch Lease holder lost
// the same way, once while it owns the namespace (the combined case) and
// once while it does not, as the owners of the moment allow.
func (in *containerdInstall) deaths(t *testing.T, runs int) []deathReport {
	ctx := t.Context()
	pods := in.cluster.Client.CoreV1().Pods("kubestitch")
	var reports []deathReport
	// namespaceOf is a namespace whose owner is (or is not) the holder.
	namespaceOf := func(holder string, owned bool) string {
		for _, n := range in.namespaces {
			if (in.owner[n] == holder) == owned {
				return n
			}
		}
		return ""
	}
	for run := 0; run < runs; run++ {
		// 1. The owner's collector SIGKILLed.
		ns := namespaceOf(in.holder(t), false)
		require.NotEmpty(t, ns, "a namespace not owned by the Lease holder (owners %v)", in.owner)
		victim, err := pods.Get(ctx, in.owner[ns], metav1.GetOptions{})
		require.NoError(t, err)
		restarts := victim.Status.ContainerStatuses[0].RestartCount
		trigger := in.inFlight(t, ns)
		killed := time.Now()
		pid := containerPID(t, victim, "--config=/conf/gateway.yaml")
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		t.Logf("SIGKILLed %s's collector (pid %d, owner of %s) 500ms into its rollout", victim.Name, pid, ns)
		require.Eventually(t, func() bool {
			p, err := pods.Get(ctx, victim.Name, metav1.GetOptions{})
			return err == nil && installPodReady(p) && p.Status.ContainerStatuses[0].RestartCount > restarts
		}, 2*time.Minute, 200*time.Millisecond, "the kubelet restarts the gateway's container and it is ready again")
		waitRing(t, in.cluster, in.metrics, "every load-balancing exporter has 3 gateways again")
		reports = append(reports, in.afterDeath(t, "owner's collector SIGKILLed", ns, trigger, "", killed))

		// 2. The owner lost with its pod.
		ns = namespaceOf(in.holder(t), false)
		require.NotEmpty(t, ns, "a namespace not owned by the Lease holder (owners %v)", in.owner)
		lost := in.owner[ns]
		trigger = in.inFlight(t, ns)
		killed = time.Now()
		require.NoError(t, pods.Delete(ctx, lost, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
		t.Logf("deleted %s (owner of %s) at once, 500ms into its rollout", lost, ns)
		in.waitReplaced(t, lost)
		reports = append(reports, in.afterDeath(t, "owner lost with its pod", ns, trigger, lost, killed))

		// 3. The Lease holder lost with its pod: the combined case first
		// if the holder owns a namespace, then the other with the next
		// holder (or the other way round).
		done := map[bool]bool{}
		for range 2 {
			h := in.holder(t)
			combined := namespaceOf(h, true) != "" && !done[true]
			if done[combined] {
				t.Logf("run %d: the Lease holder %s owns no namespace (owners %v): the combined case did not come up", run+1, h, in.owner)
				break
			}
			done[combined] = true
			ns := namespaceOf(h, combined)
			if ns == "" {
				t.Logf("run %d: every namespace is owned by the Lease holder %s (owners %v): the holder-only case did not come up", run+1, h, in.owner)
				break
			}
			death := "Lease holder lost with its pod, the rollout in flight in another's namespace"
			if combined {
				death = combinedDeath
			}
			trigger := in.inFlight(t, ns)
			killed := time.Now()
			require.NoError(t, pods.Delete(ctx, h, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
			require.Eventually(t, func() bool { n := in.holder(t); return n != "" && n != h }, 2*time.Minute, 200*time.Millisecond, "another gateway takes the k8swatch Lease")
			t.Logf("Lease holder %s deleted: %s took the Lease %v later", h, in.holder(t), time.Since(killed))
			in.waitReplaced(t, h)
			reports = append(reports, in.afterDeath(t, death, ns, trigger, h, killed))
		}
	}
	return reports
}

// waitReplaced waits until the Deployment replaced the lost gateway and
// every load-balancing exporter has the replacement in its ring.
func (in *containerdInstall) waitReplaced(t *testing.T, lost string) {
	start := time.Now()
	require.Eventually(t, func() bool {
		n := 0
		for _, p := range installPods(t, in.cluster) {
			if p.Namespace == "kubestitch" && p.Name != lost && installPodReady(&p) {
				n++
			}
		}
		return n == 3
	}, 2*time.Minute, 200*time.Millisecond, "the Deployment replaces the lost gateway")
	waitRing(t, in.cluster, in.metrics, "every load-balancing exporter has the replacement in its ring")
	t.Logf("%s lost: %v until its replacement was ready and in every ring", lost, time.Since(start))
}
