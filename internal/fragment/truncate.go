package fragment

import (
	"strings"
	"unicode/utf8"
)

// TruncateUTF8 cuts s to at most n bytes at a rune boundary and replaces
// invalid UTF-8, so a span never carries a broken or unbounded string. A
// cut string is a copy: a prefix of a huge string (a forged object name)
// would keep all of it alive.
func TruncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.Clone(s[:n])
}
