// Package slitable summarizes the span metrics a Kubestitch gateway
// exports (the spanmetrics connector's duration histograms, as the file
// exporter writes OTLP JSON) as the SLI table of the README and `make
// demo`: per span name, the count and p50/p99 estimated within the
// histogram's buckets, as a Prometheus histogram_quantile would.
package slitable

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// DurationMetric is the spanmetrics connector's histogram (namespace
// "traces.span.metrics").
const DurationMetric = "traces.span.metrics.duration"

// Row is one span name's histogram, summed over its series (namespaces,
// owner kinds, services, status codes).
type Row struct {
	Name     string
	Count    uint64
	P50, P99 time.Duration
	// Exemplar is the trace ID of one exemplar of the slowest bucket that
	// has one: the trace a user opens from the metric.
	Exemplar string
	bounds   []float64
	buckets  []uint64
	unit     time.Duration
}

type series struct {
	at      pcommon.Timestamp
	name    string
	count   uint64
	bounds  []float64
	buckets []uint64
	unit    time.Duration
	// exemplars by bucket index
	exemplars map[int]string
}

// ReadFile reads a file exporter's metrics output (one OTLP JSON
// MetricsData per line) and returns a row per span name, in names order
// first, then the others by name. Cumulative series repeat at every
// flush: the newest point of each series counts.
func ReadFile(path string, names []string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f, names)
}

// Read is ReadFile on a reader.
func Read(r io.Reader, names []string) ([]Row, error) {
	latest := map[string]*series{}
	var u pmetric.JSONUnmarshaler
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		md, err := u.UnmarshalMetrics(line)
		if err != nil {
			return nil, err
		}
		collect(md, latest)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	rows := map[string]*Row{}
	for _, s := range latest {
		row := rows[s.name]
		if row == nil {
			row = &Row{Name: s.name, bounds: s.bounds, buckets: make([]uint64, len(s.buckets)), unit: s.unit}
			rows[s.name] = row
		}
		if !slices.Equal(row.bounds, s.bounds) {
			return nil, fmt.Errorf("slitable: %s: series with different buckets", s.name)
		}
		row.Count += s.count
		for i, c := range s.buckets {
			row.buckets[i] += c
		}
		for i := len(s.buckets) - 1; i >= 0 && row.Exemplar == ""; i-- {
			row.Exemplar = s.exemplars[i]
		}
	}
	var out []Row
	for _, n := range names {
		if r := rows[n]; r != nil {
			out = append(out, *r)
			delete(rows, n)
		}
	}
	var rest []string
	for n := range rows {
		rest = append(rest, n)
	}
	slices.Sort(rest)
	for _, n := range rest {
		out = append(out, *rows[n])
	}
	for i := range out {
		out[i].P50 = out[i].quantile(0.5)
		out[i].P99 = out[i].quantile(0.99)
	}
	return out, nil
}

func collect(md pmetric.Metrics, latest map[string]*series) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		res := rms.At(i).Resource().Attributes().AsRaw()
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Name() != DurationMetric || m.Type() != pmetric.MetricTypeHistogram {
					continue
				}
				unit := time.Millisecond
				if m.Unit() == "s" {
					unit = time.Second
				}
				dps := m.Histogram().DataPoints()
				for l := 0; l < dps.Len(); l++ {
					dp := dps.At(l)
					name, _ := dp.Attributes().Get("span.name")
					key := fmt.Sprint(res, dp.Attributes().AsRaw())
					old := latest[key]
					if old != nil && old.at > dp.Timestamp() {
						continue
					}
					s := &series{at: dp.Timestamp(), name: name.Str(), count: dp.Count(), bounds: dp.ExplicitBounds().AsRaw(), buckets: dp.BucketCounts().AsRaw(), unit: unit, exemplars: map[int]string{}}
					if old != nil {
						// The connector sends a point's exemplars once, with
						// the flush after their spans: keep them.
						maps.Copy(s.exemplars, old.exemplars)
					}
					for e := 0; e < dp.Exemplars().Len(); e++ {
						ex := dp.Exemplars().At(e)
						s.exemplars[bucketOf(s.bounds, ex.DoubleValue())] = ex.TraceID().String()
					}
					latest[key] = s
				}
			}
		}
	}
}

func bucketOf(bounds []float64, v float64) int {
	i, _ := slices.BinarySearch(bounds, v)
	return i
}

// quantile estimates q within the buckets: linear inside the bucket that
// holds it, the last finite bound for the overflow bucket.
func (r *Row) quantile(q float64) time.Duration {
	if r.Count == 0 || len(r.buckets) == 0 {
		return 0
	}
	rank := q * float64(r.Count)
	var cum float64
	for i, c := range r.buckets {
		prev := cum
		cum += float64(c)
		if cum < rank || c == 0 {
			continue
		}
		lo := 0.0
		if i > 0 {
			lo = r.bounds[i-1]
		}
		if i >= len(r.bounds) {
			return toDuration(r.bounds[len(r.bounds)-1], r.unit)
		}
		hi := r.bounds[i]
		return toDuration(lo+(hi-lo)*(rank-prev)/float64(c), r.unit)
	}
	return toDuration(r.bounds[len(r.bounds)-1], r.unit)
}

func toDuration(v float64, unit time.Duration) time.Duration {
	return time.Duration(math.Round(v * float64(unit)))
}

// Format writes rows as the README's table.
func Format(w io.Writer, rows []Row) {
	fmt.Fprintf(w, "%-22s %7s %10s %10s  %s\n", "transition / span", "count", "p50", "p99", "exemplar trace (slowest bucket)")
	for _, r := range rows {
		fmt.Fprintf(w, "%-22s %7d %10s %10s  %s\n", r.Name, r.Count, r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Exemplar)
	}
}
