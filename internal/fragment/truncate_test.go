package fragment

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestTruncateUTF8(t *testing.T) {
	assert.Equal(t, "abc", TruncateUTF8("abc", 3))
	assert.Equal(t, "ab", TruncateUTF8("abc", 2))
	assert.Equal(t, "é", TruncateUTF8("éé", 3), "never half a rune")
	assert.Equal(t, "a\uFFFDb", TruncateUTF8("a\xffb", 10), "invalid UTF-8 replaced")
	long := strings.Repeat("x", 1<<20)
	cut := TruncateUTF8(long, 16)
	assert.Len(t, cut, 16)
	assert.True(t, utf8.ValidString(cut))
	assert.NotSame(t, &[]byte(long)[0], &[]byte(cut)[0])
}
