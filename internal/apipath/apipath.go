// Package apipath reads kube-apiserver request paths
// (/api/v1/namespaces/NS/pods/NAME/SUB, /apis/GROUP/VERSION/...): what the
// processor's joins and the namespace router both need of a request span's
// http.target.
package apipath

import "strings"

// Path is what a request path names.
type Path struct {
	// Group is the API group, empty for the core group (/api/v1).
	Group string
	// Namespace is empty for cluster-scoped resources (and for the
	// Namespace objects themselves).
	Namespace   string
	Resource    string
	Name        string
	Subresource string
}

// Parse reads a request target; the query is ignored. ok is false for a
// path outside /api and /apis or without a resource. It walks the path
// once, without splitting it: it runs for every apiserver request span.
func Parse(target string) (p Path, ok bool) {
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	rest := strings.Trim(target, "/")
	next := func() string {
		seg, r, _ := strings.Cut(rest, "/")
		rest = r
		return seg
	}
	switch next() {
	case "api":
		next() // version
	case "apis":
		p.Group = next()
		next() // version
	default:
		return Path{}, false
	}
	// /namespaces/NS alone is the Namespace object: cluster-scoped.
	if after, isNS := strings.CutPrefix(rest, "namespaces/"); isNS {
		if ns, tail, more := strings.Cut(after, "/"); more {
			p.Namespace, rest = ns, tail
		}
	}
	if p.Resource = next(); p.Resource == "" {
		return Path{}, false
	}
	p.Name = next()
	p.Subresource = next()
	return p, true
}
