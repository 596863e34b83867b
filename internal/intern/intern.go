// Package intern keeps one copy of the strings that repeat across the
// objects of a cluster (namespaces, kinds, field managers): there are few
// of them, and every decoded watch event or OTLP request brings its own
// copy, which a per-object state would otherwise keep for its lifetime.
package intern

import (
	"strings"
	"sync"
)

// Table is a bounded set of strings, safe for concurrent use. Past its
// bound it hands strings back as they are: memory stays bounded when a
// sender or a cluster has more distinct values than expected, only the
// saving stops.
type Table struct {
	mu  sync.Mutex
	m   map[string]string
	max int
}

// New makes a table of at most max strings.
func New(max int) *Table {
	return &Table{m: map[string]string{}, max: max}
}

// String is the table's copy of s.
func (t *Table) String(s string) string {
	if s == "" {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.m[s]; ok {
		return c
	}
	if len(t.m) >= t.max {
		return s
	}
	// A copy of its own: s may point into a larger buffer.
	c := strings.Clone(s)
	t.m[c] = c
	return c
}
