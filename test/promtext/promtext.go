// Package promtext reads the Prometheus text exposition format (a
// collector's own telemetry, kube-apiserver's /metrics) into flat samples,
// as a scrape would store them: a histogram's buckets are name_bucket
// samples with an le label, its sum and count name_sum and name_count.
// It is a thin layer over github.com/prometheus/common/expfmt.
package promtext

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is one line of an exposition: a metric name, its labels and its
// value.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// String is the sample as an exposition line (labels sorted).
func (s Sample) String() string {
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(s.Name)
	if len(keys) > 0 {
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%q", k, s.Labels[k])
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(s.Value))
	return b.String()
}

// Samples are the samples of one exposition, ordered by family name and,
// within a family, as served.
type Samples []Sample

// Parse reads a text exposition.
func Parse(text string) (Samples, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	var out Samples
	for _, n := range names {
		out = appendFamily(out, families[n])
	}
	return out, nil
}

// Scrape GETs url and parses the exposition it serves.
func Scrape(ctx context.Context, client *http.Client, url string) (Samples, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return Parse(string(b))
}

func appendFamily(out Samples, mf *dto.MetricFamily) Samples {
	name := mf.GetName()
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		with := func(k, v string) map[string]string {
			l := make(map[string]string, len(labels)+1)
			for k, v := range labels {
				l[k] = v
			}
			l[k] = v
			return l
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			out = append(out, Sample{name, labels, m.GetCounter().GetValue()})
		case dto.MetricType_GAUGE:
			out = append(out, Sample{name, labels, m.GetGauge().GetValue()})
		case dto.MetricType_UNTYPED:
			out = append(out, Sample{name, labels, m.GetUntyped().GetValue()})
		case dto.MetricType_SUMMARY:
			s := m.GetSummary()
			for _, q := range s.GetQuantile() {
				out = append(out, Sample{name, with("quantile", formatFloat(q.GetQuantile())), q.GetValue()})
			}
			out = append(out, Sample{name + "_sum", labels, s.GetSampleSum()},
				Sample{name + "_count", labels, float64(s.GetSampleCount())})
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			h := m.GetHistogram()
			for _, b := range h.GetBucket() {
				c := b.GetCumulativeCountFloat()
				if c == 0 {
					c = float64(b.GetCumulativeCount())
				}
				out = append(out, Sample{name + "_bucket", with("le", formatFloat(b.GetUpperBound())), c})
			}
			c := h.GetSampleCountFloat()
			if c == 0 {
				c = float64(h.GetSampleCount())
			}
			out = append(out, Sample{name + "_sum", labels, h.GetSampleSum()},
				Sample{name + "_count", labels, c})
		}
	}
	return out
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Of are the samples of one metric, name or, for a counter, name_total,
// whose labels include the given pairs (key, value, key, value...).
func (ss Samples) Of(name string, labels ...string) Samples {
	var out Samples
	for _, s := range ss {
		if (s.Name == name || s.Name == name+"_total") && s.has(labels) {
			out = append(out, s)
		}
	}
	return out
}

func (s Sample) has(pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		if v, ok := s.Labels[pairs[i]]; !ok || v != pairs[i+1] {
			return false
		}
	}
	return true
}

// Sum is the sum of a metric's samples (as Of selects them) over their
// labels; 0 when it has none.
func (ss Samples) Sum(name string, labels ...string) float64 {
	var sum float64
	for _, s := range ss.Of(name, labels...) {
		sum += s.Value
	}
	return sum
}

// Value is the value of the first of a metric's samples (as Of selects
// them), and whether there is one.
func (ss Samples) Value(name string, labels ...string) (float64, bool) {
	of := ss.Of(name, labels...)
	if len(of) == 0 {
		return 0, false
	}
	return of[0].Value, true
}

// Values are the values of a metric's samples (as Of selects them).
func (ss Samples) Values(name string, labels ...string) []float64 {
	var out []float64
	for _, s := range ss.Of(name, labels...) {
		out = append(out, s.Value)
	}
	return out
}

// Names are the names of the samples.
func (ss Samples) Names() map[string]bool {
	out := map[string]bool{}
	for _, s := range ss {
		out[s.Name] = true
	}
	return out
}
