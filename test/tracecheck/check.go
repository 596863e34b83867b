// Package tracecheck is the one checker every end-to-end test applies to an
// operation trace: what a user looking at the waterfall would check.
package tracecheck

import (
	"fmt"
	"slices"
	"time"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
)

// Expect is what an operation trace must show.
type Expect struct {
	// Root is the root span's name.
	Root string
	// Services must all appear.
	Services []string
	// ClockTolerance: no span starts earlier than the trigger minus this.
	ClockTolerance time.Duration
}

// Check returns every problem of a trace; none means whole.
func Check(t *waterfall.Trace, e Expect) []string {
	var problems []string
	if len(t.Roots) != 1 {
		problems = append(problems, fmt.Sprintf("%d roots, want 1", len(t.Roots)))
	}
	if t.Root != nil && e.Root != "" && t.Root.Name != e.Root {
		problems = append(problems, fmt.Sprintf("root is %s, want %s", t.Root.Name, e.Root))
	}
	for _, o := range t.Orphans {
		problems = append(problems, fmt.Sprintf("orphan %s %s (parent %s not in the trace)", o.Name, o.Object, o.ParentID))
	}
	if t.Duplicates > 0 {
		problems = append(problems, fmt.Sprintf("%d duplicate span IDs", t.Duplicates))
	}
	services := t.Services()
	for _, s := range e.Services {
		if !slices.Contains(services, s) {
			problems = append(problems, fmt.Sprintf("service %s missing (have %v)", s, services))
		}
	}
	if t.Root != nil {
		trigger := t.Root.Start.Add(-e.ClockTolerance)
		for _, s := range t.Spans {
			// An SLI span starts at the pod's creationTimestamp, whole
			// seconds by the API's definition (clusterloader2 measures
			// from it): it may precede the trigger seen by a watch.
			if s.Start.Before(trigger) && !s.IsSLI() {
				problems = append(problems, fmt.Sprintf("%s %s starts %s before the trigger", s.Name, s.Object, t.Root.Start.Sub(s.Start)))
			}
		}
	}
	problems = append(problems, phaseOrder(t)...)
	return problems
}

// phaseOrder: per pod, schedule starts no later than container start, which
// starts no later than ready.
func phaseOrder(t *waterfall.Trace) []string {
	var problems []string
	for _, s := range t.Spans {
		if s.Name != fragment.PhasePodStartup {
			continue
		}
		starts := map[string]time.Time{}
		for _, c := range s.Children {
			if c.IsFragment() {
				if prev, ok := starts[c.Name]; !ok || c.Start.Before(prev) {
					starts[c.Name] = c.Start
				}
			}
		}
		order := []string{fragment.PhasePodSchedule, fragment.PhaseContainerStart, fragment.PhasePodReady}
		for i := 1; i < len(order); i++ {
			a, aok := starts[order[i-1]]
			b, bok := starts[order[i]]
			if aok && bok && b.Before(a) {
				problems = append(problems, fmt.Sprintf("%s: %s starts before %s", s.Object, order[i], order[i-1]))
			}
		}
	}
	return problems
}

// CountService counts the spans of a trace from service.
func CountService(t *waterfall.Trace, service string) int {
	n := 0
	for _, s := range t.Spans {
		if s.Service == service {
			n++
		}
	}
	return n
}

// Count counts the spans of a trace named name (optionally only those whose
// object has the given kind prefix, e.g. "Pod ").
func Count(t *waterfall.Trace, name string) int {
	n := 0
	for _, s := range t.Spans {
		if s.Name == name {
			n++
		}
	}
	return n
}

// Find is the first trace whose root is named root and whose root object
// and trigger match. A root k8sstitch quarantined (an unsigned span that
// imitates a fragment, in a trace of its own) is not an operation's root:
// which of the two a backend lists first is the order spans arrived in.
func Find(traces []*waterfall.Trace, root, object, trigger string) *waterfall.Trace {
	for _, t := range traces {
		for _, r := range t.Roots {
			if r.Name != root || r.Object != object {
				continue
			}
			if v, ok := r.Attributes.Get(fragment.KeyUnverified); ok && v.Bool() {
				continue
			}
			if v, ok := r.Attributes.Get(fragment.KeyTrigger); ok && (trigger == "" || v.Str() == trigger) {
				return t
			}
		}
	}
	return nil
}
