package deploy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// What a scale run's traces show: every pod and operation complete, and
// its time to completion, from the gateways' output.

// awaitComplete waits, up to 3 minutes, until every pod that ran is in
// its operation's trace with every phase and every operation is whole at
// one gateway, and logs how far it got (and what is missing, if not).
func awaitComplete(t *testing.T, be *backends, ops []*scaleOp, ran map[types.UID]ranPod) (*scaleReport, bool) {
	var report *scaleReport
	ok := assert.Eventually(t, func() bool {
		report = analyze(be, ops, ran)
		return report.missing() == 0
	}, 3*time.Minute, 5*time.Second)
	if !ok {
		for _, l := range report.problems {
			t.Log(l)
		}
	}
	t.Logf("completeness: %d of %d pods that ran are in their operation's trace with every phase; %d of %d operations whole at one gateway",
		report.completePods, len(ran), report.wholeOps, len(ops))
	return report, ok
}

// scaleReport is what the backends hold about the run's operations.
type scaleReport struct {
	completePods, wholeOps int
	exported, joined       map[string]int
	// outside itemises the requests not in an operation's trace: class,
	// namespace (the workload's or the install's own) and what their
	// trace holds.
	outside           map[string]int
	freshness         []time.Duration
	problems          []string
	wantPods, wantOps int
}

// analyze reads every span the gateways exported.
func analyze(be *backends, ops []*scaleOp, ran map[types.UID]ranPod) *scaleReport {
	r := &scaleReport{exported: map[string]int{}, joined: map[string]int{}, outside: map[string]int{}, wantPods: len(ran), wantOps: len(ops)}
	type opKey struct{ uid, trigger string }
	type podSeen struct {
		phases map[string]bool
		trace  pcommon.TraceID
	}
	opTrace := map[pcommon.TraceID]opKey{}
	opAt := map[opKey][]string{} // the gateways with its root span
	arrived := map[opKey]time.Time{}
	podsIn := map[opKey]int{} // pod.ready (or pod object spans for a Job) in its trace
	pods := map[string]*podSeen{}
	objects := map[string]string{} // UID -> "Kind ns/name", for the problems
	type request struct {
		class, ns, pod, status string
		trace                  pcommon.TraceID
		at                     time.Time
	}
	podOps := map[string][]podOp{}         // "ns/name"
	rootOf := map[pcommon.TraceID]string{} // "Kind trigger" of a trace's root fragment
	var requests []request
	be.mu.Lock()
	for gw, s := range be.sinks {
		s.Each(func(at time.Time, service string, sp ptrace.Span) {
			a := sp.Attributes()
			level, isFrag := a.Get(fragment.KeyLevel)
			if !isFrag {
				if service != "apiserver" {
					return
				}
				m, ok1 := a.Get("http.request.method")
				tg, ok2 := a.Get("http.target")
				if ok1 && ok2 {
					if c := requestClass(m.Str(), tg.Str()); c != "" {
						status := "status ?"
						for _, k := range []string{"http.response.status_code", "http.status_code"} {
							if v, ok := a.Get(k); ok {
								status = "status " + v.AsString()
							}
						}
						requests = append(requests, request{c, namespaceOf(tg.Str()), podOf(tg.Str()), status, sp.TraceID(), sp.StartTimestamp().AsTime()})
					}
				}
				return
			}
			uid, _ := a.Get(fragment.KeyUID)
			kind, _ := a.Get(fragment.KeyKind)
			trig, _ := a.Get(fragment.KeyTrigger)
			if _, ok := objects[uid.Str()]; !ok {
				ns, _ := a.Get(fragment.KeyNamespace)
				name, _ := a.Get(fragment.KeyName)
				objects[uid.Str()] = kind.Str() + " " + ns.Str() + "/" + name.Str()
			}
			if level.Str() == fragment.LevelObject && kind.Str() == "Pod" {
				ns, _ := a.Get(fragment.KeyNamespace)
				name, _ := a.Get(fragment.KeyName)
				k := ns.Str() + "/" + name.Str()
				podOps[k] = append(podOps[k], podOp{trig.Str(), sp.StartTimestamp().AsTime(), sp.EndTimestamp().AsTime()})
			}
			if sp.ParentSpanID().IsEmpty() {
				t := trig.Str()
				if strings.HasPrefix(t, "gen:") {
					t = "gen"
				}
				rootOf[sp.TraceID()] = kind.Str() + " " + t
			}
			if level.Str() == fragment.LevelObject && sp.ParentSpanID().IsEmpty() && kind.Str() != "Pod" {
				k := opKey{uid.Str(), trig.Str()}
				opTrace[sp.TraceID()] = k
				opAt[k] = append(opAt[k], gw)
				if t, ok := arrived[k]; !ok || at.Before(t) {
					arrived[k] = at
				}
			}
			if kind.Str() != "Pod" || trig.Str() != "gen:1" {
				return
			}
			p := pods[uid.Str()]
			if p == nil {
				p = &podSeen{phases: map[string]bool{}}
				pods[uid.Str()] = p
			}
			p.phases[sp.Name()] = true
			if level.Str() == fragment.LevelObject {
				p.trace = sp.TraceID()
			}
		})
	}
	be.mu.Unlock()
	for _, q := range requests {
		r.exported[q.class]++
		if _, ok := opTrace[q.trace]; ok {
			r.joined[q.class]++
			continue
		}
		ns := q.ns
		if strings.HasPrefix(ns, "group-") {
			ns = "group-*"
		}
		where := "no fragment in its trace"
		if root, ok := rootOf[q.trace]; ok {
			where = "trace rooted at " + root
		}
		where += ", " + whenAgainst(q.at, podOps[q.ns+"/"+q.pod])
		r.outside[q.class+" ("+q.status+"), "+ns+", "+where]++
	}
	for uid, want := range ran {
		p := pods[string(uid)]
		var missing []string
		if p == nil {
			missing = append(missing, "every span")
		} else {
			need := []string{fragment.PhasePodStartup, fragment.PhasePodSchedule}
			if want.ready {
				need = append(need, fragment.PhasePodReady)
			}
			for _, ph := range need {
				if !p.phases[ph] {
					missing = append(missing, ph)
				}
			}
			if k, ok := opTrace[p.trace]; !ok {
				missing = append(missing, "an operation's trace")
			} else if p.phases[fragment.PhasePodStartup] {
				podsIn[k]++
			}
		}
		if len(missing) == 0 {
			r.completePods++
		} else if len(r.problems) < 20 {
			r.problems = append(r.problems, fmt.Sprintf("pod %s/%s (%s): no %s", want.ns, want.name, uid, strings.Join(missing, ", ")))
		}
	}
	// where each namespace's pods went, for an operation short of its pods
	wentTo := map[string]map[string]int{}
	for uid, want := range ran {
		if p := pods[string(uid)]; p != nil {
			k, ok := opTrace[p.trace]
			where := "a trace of its own"
			if ok {
				where = objects[k.uid] + " " + k.trigger
			}
			if wentTo[want.ns] == nil {
				wentTo[want.ns] = map[string]int{}
			}
			wentTo[want.ns][where]++
		}
	}
	for _, op := range ops {
		k := opKey{string(op.uid), op.trigger}
		at := opAt[k]
		switch {
		case len(at) != 1:
			r.problems = append(r.problems, fmt.Sprintf("%s: root span at %d gateways %v", op, len(at), at))
		case podsIn[k] < op.pods:
			r.problems = append(r.problems, fmt.Sprintf("%s: %d of its %d pods in its trace; the pods of %s went to %v", op, podsIn[k], op.pods, op.ns, wentTo[op.ns]))
		default:
			r.wholeOps++
		}
		if t, ok := arrived[k]; ok {
			r.freshness = append(r.freshness, t.Sub(op.converged))
		}
	}
	return r
}
