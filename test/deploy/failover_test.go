package deploy

import (
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/test/tracecheck"
)

// atBackend is an operation's trace as a backend shows it: the spans of
// every gateway with its trace ID, together (a backend keys traces by ID,
// not by the collector that sent them), and how many each gateway sent.
// After a gateway's death an operation in flight is sent in two parts: by
// the dead gateway until it died, and by the namespace's new owner after.
func (b *backends) atBackend(phase, object, trigger string) (*waterfall.Trace, map[string]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var id *waterfall.Trace
	for _, s := range b.sinks {
		if tr := tracecheck.Find(waterfall.Build(s.Traces()), phase, object, trigger); tr != nil {
			id = tr
		}
	}
	if id == nil {
		return nil, nil
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
			return tr, sent
		}
	}
	return nil, sent
}

// deathReport is what an operation in flight kept through a gateway's
// death, as a backend shows it.
type deathReport struct {
	death      string
	whole      bool
	podsReady  int
	rootsAt    []string
	sentBy     map[string]int
	problems   []string
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
	if !r.whole {
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
	for gw := range be.find(fragment.PhaseDeploymentRollout, object, trigger) {
		r.rootsAt = append(r.rootsAt, gw)
	}
	tr, sent := be.atBackend(fragment.PhaseDeploymentRollout, object, trigger)
	r.sentBy = sent
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
	return r
}
