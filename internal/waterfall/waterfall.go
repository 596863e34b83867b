// Package waterfall turns OTLP traces into span trees and prints them as
// text waterfalls: one line per span, indented by depth, with service,
// name, object, duration and a bar placed on the trace's time line.
package waterfall

import (
	"cmp"
	"fmt"
	"io"
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

// Options of Render.
type Options struct {
	// Width of the bar column. Default: 40.
	Width int
	// MaskDurations prints "-" for durations and no bars: for golden files,
	// whose structure is reviewed and whose timing varies by run.
	MaskDurations bool
	// MaskNames replaces generated name suffixes (web-7d9f8-xk2lp) by
	// their shape, for golden files.
	MaskNames bool
	// Collapse, when it returns true for a span, prints the span but not
	// its descendants, only their number: for an API request's internals.
	Collapse func(*Node) bool
	// FragmentsOnly prints only the k8swatch fragments, ordered by name and
	// object: the skeleton of an operation, stable from run to run.
	FragmentsOnly bool
	// MergeSiblings (with FragmentsOnly) prints siblings of the same name
	// and masked object once, with their count and their children merged:
	// "pod.startup ×5". MaskCounts prints "×n" instead of the count, for
	// operations whose number of steps depends on timing (a rolling update
	// scales its ReplicaSets in a varying number of steps).
	MergeSiblings bool
	MaskCounts    bool
	// NoSLI leaves out the SLI spans (measurements of a pod start, not
	// steps of it) from a FragmentsOnly skeleton.
	NoSLI bool
}

// Render prints one trace as a waterfall, depth first from its roots; an
// orphan (parent missing) is printed as a root marked "(orphan)".
func Render(w io.Writer, t *Trace, o Options) {
	if o.Width <= 0 {
		o.Width = 40
	}
	start, end := t.Start(), t.End()
	total := end.Sub(start)
	if !o.MaskDurations {
		fmt.Fprintf(w, "trace %s  %s  %d spans\n", t.ID, total.Round(time.Millisecond), len(t.Spans))
	}
	var walk func(n *Node, depth int, mark string)
	walk = func(n *Node, depth int, mark string) {
		label := strings.Repeat("  ", depth) + n.Name
		if len(label) > labelWidth {
			// Keep the bars aligned: long request routes are cut.
			label = label[:labelWidth-3] + "..."
		}
		obj := n.Object
		if o.MaskNames {
			obj = maskName(obj)
		}
		if mark != "" {
			obj += " " + mark
		}
		if n.Error {
			obj += " (error"
			if n.Status != "" && !o.MaskDurations {
				obj += ": " + cut(n.Status, statusWidth)
			}
			obj += ")"
		}
		collapsed := o.Collapse != nil && o.Collapse(n) && len(n.Children) > 0
		if collapsed {
			obj += fmt.Sprintf(" (+%d spans)", descendants(n))
		}
		if o.MaskDurations {
			fmt.Fprintf(w, "%-24s %-48s %s\n", n.Service, label, obj)
		} else {
			fmt.Fprintf(w, "%-24s %-48s %9s |%s| %s\n", n.Service, label, fmtDur(n.End.Sub(n.Start)), bar(n, start, total, o.Width), obj)
		}
		if collapsed {
			return
		}
		children := n.Children
		if o.FragmentsOnly {
			children = fragmentChildren(n, o)
		}
		for _, c := range children {
			walk(c, depth+1, "")
		}
	}
	if o.FragmentsOnly && o.MergeSiblings {
		for _, g := range mergeGroups(t.Roots, o) {
			renderGroup(w, g, 0, o)
		}
		return
	}
	for _, r := range t.Roots {
		walk(r, 0, "")
	}
	for _, r := range t.Orphans {
		walk(r, 0, "(orphan)")
	}
}

// statusWidth bounds an error's message in a line.
const statusWidth = 90

func cut(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-3]) + "..."
	}
	return s
}

// labelWidth is the width of the indented name column.
const labelWidth = 48

func bar(n *Node, start time.Time, total time.Duration, width int) string {
	b := []byte(strings.Repeat(" ", width))
	if total <= 0 {
		b[0] = '#'
		return string(b)
	}
	from := int(float64(n.Start.Sub(start)) / float64(total) * float64(width))
	to := int(float64(n.End.Sub(start)) / float64(total) * float64(width))
	from = min(max(from, 0), width-1)
	to = min(max(to, from+1), width)
	for i := from; i < to; i++ {
		b[i] = '='
	}
	return string(b)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// maskName replaces the random suffixes Kubernetes generates for
// ReplicaSet and Pod names (pod-template-hash, random 5 chars).
func maskName(s string) string {
	parts := strings.Split(s, "/")
	last := parts[len(parts)-1]
	segs := strings.Split(last, "-")
	for i := 1; i < len(segs); i++ {
		if isGenerated(segs[i]) {
			segs[i] = strings.Repeat("x", len(segs[i]))
		}
	}
	parts[len(parts)-1] = strings.Join(segs, "-")
	return strings.Join(parts, "/")
}

func isGenerated(seg string) bool {
	if len(seg) < 5 || len(seg) > 10 {
		return false
	}
	digits := 0
	for _, c := range seg {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'z':
		default:
			return false
		}
	}
	// Random suffixes use bcdfghjklmnpqrstvwxz2456789; a word has no digit
	// and a vowel, a hash or random string has a digit or no vowel.
	return digits > 0 || !strings.ContainsAny(seg, "aeiouy")
}

func descendants(n *Node) int {
	c := 0
	for _, ch := range n.Children {
		c += 1 + descendants(ch)
	}
	return c
}

// CollapseAPIRequests collapses kube-apiserver request spans (their
// audit/authorization/handler/etcd children) and the apiserver's
// authentication wrapper.
func CollapseAPIRequests(n *Node) bool {
	if n.Service != "apiserver" {
		return false
	}
	if n.Name == "authentication" {
		return false
	}
	return strings.HasPrefix(n.Name, "POST ") || strings.HasPrefix(n.Name, "PUT ") ||
		strings.HasPrefix(n.Name, "PATCH ") || strings.HasPrefix(n.Name, "DELETE ") ||
		strings.HasPrefix(n.Name, "GET ")
}

// IsFragment says whether a span came from the k8swatch receiver.
func (n *Node) IsFragment() bool {
	_, ok := n.Attributes.Get(fragment.KeyLevel)
	return ok
}

// isSLI says whether a span is one of k8swatch's SLI spans.
func (n *Node) isSLI() bool {
	v, _ := n.Attributes.Get(fragment.KeyLevel)
	return v.Str() == fragment.LevelSLI
}

func fragmentChildren(n *Node, o Options) []*Node {
	var out []*Node
	for _, c := range n.Children {
		if c.IsFragment() && !(o.NoSLI && c.isSLI()) {
			out = append(out, c)
		}
	}
	obj := func(x *Node) string {
		if o.MaskNames {
			return maskName(x.Object)
		}
		return x.Object
	}
	slices.SortStableFunc(out, func(a, b *Node) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(obj(a), obj(b)))
	})
	return out
}

// group is a set of sibling fragments with the same name and masked object.
type group struct {
	name, service, object string
	nodes                 []*Node
}

func mergeGroups(nodes []*Node, o Options) []*group {
	var out []*group
	idx := map[string]*group{}
	for _, n := range nodes {
		if !n.IsFragment() || (o.NoSLI && n.isSLI()) {
			continue
		}
		obj := n.Object
		if o.MaskNames {
			obj = maskName(obj)
		}
		k := n.Name + "\x00" + obj + "\x00" + n.Service
		g := idx[k]
		if g == nil {
			g = &group{name: n.Name, service: n.Service, object: obj}
			idx[k] = g
			out = append(out, g)
		}
		g.nodes = append(g.nodes, n)
	}
	slices.SortStableFunc(out, func(a, b *group) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.object, b.object), strings.Compare(a.service, b.service))
	})
	return out
}

func renderGroup(w io.Writer, g *group, depth int, o Options) {
	count := ""
	if len(g.nodes) > 1 {
		count = fmt.Sprintf(" ×%d", len(g.nodes))
		if o.MaskCounts {
			count = " ×n"
		}
	}
	fmt.Fprintf(w, "%-24s %-48s %s%s\n", g.service, strings.Repeat("  ", depth)+g.name, g.object, count)
	var children []*Node
	for _, n := range g.nodes {
		children = append(children, n.Children...)
	}
	for _, c := range mergeGroups(children, o) {
		renderGroup(w, c, depth+1, o)
	}
}
