package waterfall

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Rendering: a trace tree as text, one line per span.

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
