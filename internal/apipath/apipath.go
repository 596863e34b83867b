// Package apipath reads kube-apiserver request paths
// (/api/v1/namespaces/NS/pods/NAME/SUB, /apis/GROUP/VERSION/...): what the
// processor's joins and the namespace router both need of a request span's
// http.target.
package apipath

import "strings"

// Path is what a request path names.
type Path struct {
	// Namespace is empty for cluster-scoped resources (and for the
	// Namespace objects themselves).
	Namespace   string
	Resource    string
	Name        string
	Subresource string
}

// maxParts is more segments than any object path has
// (/apis/G/V/namespaces/NS/R/NAME/SUB is 8).
const maxParts = 9

// Parse reads a request target; the query is ignored. ok is false for a
// path outside /api and /apis or without a resource.
func Parse(target string) (p Path, ok bool) {
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	var buf [maxParts]string
	parts := split(target, buf[:0])
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return Path{}, false
	}
	// /namespaces/NS alone is the Namespace object: cluster-scoped.
	if len(parts) >= 3 && parts[0] == "namespaces" {
		p.Namespace, parts = parts[1], parts[2:]
	}
	if len(parts) == 0 {
		return Path{}, false
	}
	p.Resource = parts[0]
	if len(parts) >= 2 {
		p.Name = parts[1]
	}
	if len(parts) >= 3 {
		p.Subresource = parts[2]
	}
	return p, true
}

// split splits a URL path into its segments, into buf (no allocation on
// the hot path); a path with more segments than buf holds is cut.
func split(path string, buf []string) []string {
	path = strings.Trim(path, "/")
	for path != "" && len(buf) < cap(buf) {
		seg, rest, _ := strings.Cut(path, "/")
		buf = append(buf, seg)
		path = rest
	}
	return buf
}
