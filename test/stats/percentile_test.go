package stats

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPercentile(t *testing.T) {
	assert.Zero(t, Percentile(nil, 0.5))

	one := []time.Duration{7}
	for _, q := range []float64{0, 0.5, 0.99, 1} {
		assert.Equal(t, time.Duration(7), Percentile(one, q))
	}

	// 1..100, unsorted: index floor(q*n) of the sorted values.
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	assert.Equal(t, time.Duration(1), Percentile(ds, 0))
	assert.Equal(t, time.Duration(51), Percentile(ds, 0.5))
	assert.Equal(t, time.Duration(100), Percentile(ds, 0.99))
	assert.Equal(t, time.Duration(100), Percentile(ds, 1))
	assert.Equal(t, time.Duration(100), ds[0], "the input is left as it was")

	// Ten values: p50 is the sixth, p99 the last.
	ten := []time.Duration{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	assert.Equal(t, time.Duration(60), Percentile(ten, 0.5))
	assert.Equal(t, time.Duration(100), Percentile(ten, 0.99))
	assert.Equal(t, time.Duration(10), Percentile(ten, -1), "clamped below")
}
