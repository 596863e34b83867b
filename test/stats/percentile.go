// Package stats holds the figures the tests report over measured
// durations.
package stats

import (
	"slices"
	"time"
)

// Percentile is the q-quantile (0 <= q <= 1) of ds by nearest rank: the
// element at index floor(q*n) of ds sorted, the largest for q = 1; 0 for
// no durations. ds is not changed.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[max(0, min(len(s)-1, int(q*float64(len(s)))))]
}
