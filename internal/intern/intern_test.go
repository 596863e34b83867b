package intern

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

func TestEqualStringsShareOneCopy(t *testing.T) {
	tab := New(10)
	a := tab.String(string([]byte("kube-system")))
	b := tab.String(string([]byte("kube-system")))
	assert.Equal(t, "kube-system", b)
	assert.Equal(t, unsafe.StringData(a), unsafe.StringData(b), "one copy")
}

func TestPastItsBoundTheTableStopsGrowing(t *testing.T) {
	tab := New(3)
	for i := range 100 {
		s := fmt.Sprint("ns-", i)
		assert.Equal(t, s, tab.String(s), "every string comes back equal")
	}
	assert.Len(t, tab.m, 3)
}
