// Package waterfall turns OTLP traces into span trees and prints them as
// text waterfalls: one line per span, indented by depth, with service,
// name, object, duration and a bar placed on the trace's time line.
package waterfall

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// Node is one span of a trace tree.
type Node struct {
	TraceID  pcommon.TraceID
	SpanID   pcommon.SpanID
	ParentID pcommon.SpanID
	Name     string
	Service  string
	// Object is "Kind namespace/name" for fragments, the request target for
	// API requests, else empty.
	Object     string
	Start, End time.Time
	Error      bool
	// Status is the status message of an error (a blocked step's
	// Warning: "FailedScheduling: 0/3 nodes are available: ...").
	Status     string
	Attributes pcommon.Map
	Children   []*Node
	Parent     *Node
}

// Trace is one trace as a tree.
type Trace struct {
	ID    pcommon.TraceID
	Spans []*Node
	// Roots are spans without a parent in the trace (one in a whole trace);
	// Root is the first of them.
	Roots []*Node
	Root  *Node
	// Orphans are spans whose parent is not in the trace.
	Orphans []*Node
	// Duplicates counts span IDs seen more than once.
	Duplicates int
}

// Services lists the services of a trace, sorted.
func (t *Trace) Services() []string {
	set := map[string]bool{}
	for _, s := range t.Spans {
		set[s.Service] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Start and End of the trace.
func (t *Trace) Start() time.Time {
	var s time.Time
	for _, n := range t.Spans {
		if s.IsZero() || n.Start.Before(s) {
			s = n.Start
		}
	}
	return s
}

func (t *Trace) End() time.Time {
	var e time.Time
	for _, n := range t.Spans {
		if n.End.After(e) {
			e = n.End
		}
	}
	return e
}

// Build groups spans into traces (in order of their start) and links each
// span to its parent.
func Build(td ptrace.Traces) []*Trace {
	byID := map[pcommon.TraceID]*Trace{}
	var order []*Trace
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		svc := ""
		if v, ok := rss.At(i).Resource().Attributes().Get(fragment.KeyServiceName); ok {
			svc = v.Str()
		}
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				s := spans.At(k)
				t := byID[s.TraceID()]
				if t == nil {
					t = &Trace{ID: s.TraceID()}
					byID[s.TraceID()] = t
					order = append(order, t)
				}
				t.Spans = append(t.Spans, &Node{
					TraceID: s.TraceID(), SpanID: s.SpanID(), ParentID: s.ParentSpanID(),
					Name: s.Name(), Service: svc, Object: objectOf(s),
					Start: s.StartTimestamp().AsTime(), End: s.EndTimestamp().AsTime(),
					Error: s.Status().Code() == ptrace.StatusCodeError, Status: s.Status().Message(), Attributes: s.Attributes(),
				})
			}
		}
	}
	for _, t := range order {
		link(t)
	}
	slices.SortStableFunc(order, func(a, b *Trace) int { return a.Start().Compare(b.Start()) })
	return order
}

func link(t *Trace) {
	ids := map[pcommon.SpanID]*Node{}
	for _, n := range t.Spans {
		if _, dup := ids[n.SpanID]; dup {
			t.Duplicates++
			continue
		}
		ids[n.SpanID] = n
	}
	for _, n := range t.Spans {
		if ids[n.SpanID] != n {
			continue
		}
		if n.ParentID.IsEmpty() {
			t.Roots = append(t.Roots, n)
			continue
		}
		p, ok := ids[n.ParentID]
		if !ok {
			t.Orphans = append(t.Orphans, n)
			continue
		}
		n.Parent = p
		p.Children = append(p.Children, n)
	}
	for _, n := range t.Spans {
		slices.SortStableFunc(n.Children, byStart)
	}
	slices.SortStableFunc(t.Roots, byStart)
	if len(t.Roots) > 0 {
		t.Root = t.Roots[0]
	}
}

func byStart(a, b *Node) int {
	return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.Name, b.Name), strings.Compare(a.Object, b.Object))
}

func objectOf(s ptrace.Span) string {
	a := s.Attributes()
	if kind, ok := a.Get(fragment.KeyKind); ok {
		name, _ := a.Get(fragment.KeyName)
		if ns, ok := a.Get(fragment.KeyNamespace); ok && ns.Str() != "" {
			return kind.Str() + " " + ns.Str() + "/" + name.Str()
		}
		return kind.Str() + " " + name.Str()
	}
	if t, ok := a.Get("http.target"); ok {
		target := t.Str()
		if i := strings.IndexByte(target, '?'); i >= 0 {
			target = target[:i]
		}
		return target
	}
	if p, ok := a.Get(fragment.KeyPodName); ok {
		return "Pod " + p.Str()
	}
	return ""
}
