package waterfall

import "github.com/kubestitch/kubestitch/internal/fragment"

// The predicates tests and tools ask of a span, kept here once.

// Level is a fragment's level (fragment.KeyLevel): "" for a span that is no
// fragment.
func (n *Node) Level() string {
	v, _ := n.Attributes.Get(fragment.KeyLevel)
	return v.Str()
}

// Trigger is a fragment's trigger (fragment.KeyTrigger), "" when it has
// none.
func (n *Node) Trigger() string {
	v, _ := n.Attributes.Get(fragment.KeyTrigger)
	return v.Str()
}

// Descendants are every node under n, depth first, each before its
// children.
func (n *Node) Descendants() []*Node {
	var out []*Node
	for _, c := range n.Children {
		out = append(out, c)
		out = append(out, c.Descendants()...)
	}
	return out
}
