package waterfall

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// The fragments-only skeleton of a trace (Options.FragmentsOnly): the
// k8swatch fragments, sorted, and with MergeSiblings merged by name.

// IsFragment says whether a span came from the k8swatch receiver.
func (n *Node) IsFragment() bool {
	_, ok := n.Attributes.Get(fragment.KeyLevel)
	return ok
}

// IsSLI says whether a span is one of k8swatch's SLI spans.
func (n *Node) IsSLI() bool {
	return n.Level() == fragment.LevelSLI
}

func fragmentChildren(n *Node, o Options) []*Node {
	var out []*Node
	for _, c := range n.Children {
		if c.IsFragment() && !(o.NoSLI && c.IsSLI()) {
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
		if !n.IsFragment() || (o.NoSLI && n.IsSLI()) {
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
