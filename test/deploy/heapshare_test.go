package deploy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
	"github.com/stretchr/testify/assert"

	"github.com/kubestitch/kubestitch/test/podrunner"
)

// heapShares is a gateway's live heap, just after a GC, by what holds it:
// read from its own pprof heap profile (the shipped config serves it on the
// pod's 127.0.0.1:1777), so the split is the real process's, not a
// benchmark's. The profile samples allocations (one per 512 KiB on
// average) and scales them up: a share of a few MiB is exact to a few
// percent.
type heapShares struct {
	// total is every byte in use on the Go heap.
	total float64
	// cache is the informers' (client-go's store, queue and the transform's
	// key-only records), tracker k8swatch's own state (the tracker and the
	// object views it keeps), stitch k8sstitch's (owner graph, operations,
	// waiting spans); other is the rest of the collector (OTLP, batching,
	// exporters, the runtime).
	cache, tracker, stitch, other float64
}

// shareOf names what holds a sample's bytes by the innermost frame of its
// stack that belongs to one of them. The interning table is skipped: a
// string it keeps is there for the frame that asked.
func shareOf(s *profile.Sample) string {
	for _, loc := range s.Location {
		for _, line := range loc.Line { // innermost first, inlined frames included
			if line.Function == nil {
				continue
			}
			fn := line.Function.Name
			switch {
			case strings.Contains(fn, "/processor/k8sstitchprocessor."):
				return "stitch"
			case strings.Contains(fn, "/receiver/k8swatchreceiver.newCachedObject"):
				return "cache"
			case strings.Contains(fn, "/receiver/k8swatchreceiver."):
				return "tracker"
			case strings.Contains(fn, "k8s.io/client-go/tools/cache."):
				return "cache"
			}
		}
	}
	return "other"
}

// gatewayHeap reads p's heap profile after a GC (gc=1) and splits it.
func gatewayHeap(runner *podrunner.Runner, p *podrunner.Pod) (heapShares, error) {
	body, err := runner.Get(p, "http://127.0.0.1:1777/debug/pprof/heap?gc=1")
	if err != nil {
		return heapShares{}, err
	}
	prof, err := profile.Parse(strings.NewReader(body))
	if err != nil {
		return heapShares{}, fmt.Errorf("%s/%s heap profile: %w", p.Namespace, p.Name, err)
	}
	inuse := -1
	for i, st := range prof.SampleType {
		if st.Type == "inuse_space" {
			inuse = i
		}
	}
	if inuse < 0 {
		return heapShares{}, fmt.Errorf("%s/%s heap profile has no inuse_space", p.Namespace, p.Name)
	}
	var h heapShares
	for _, s := range prof.Sample {
		v := float64(s.Value[inuse])
		h.total += v
		switch shareOf(s) {
		case "cache":
			h.cache += v
		case "tracker":
			h.tracker += v
		case "stitch":
			h.stitch += v
		default:
			h.other += v
		}
	}
	return h, nil
}

func (h heapShares) String() string {
	mib := func(v float64) float64 { return v / (1 << 20) }
	return fmt.Sprintf("heap %.1f MiB: informer cache %.1f, k8swatch tracker %.1f, k8sstitch %.1f, rest of the collector %.1f",
		mib(h.total), mib(h.cache), mib(h.tracker), mib(h.stitch), mib(h.other))
}

func TestShareOfNamesTheInnermostHolder(t *testing.T) {
	sample := func(fns ...string) *profile.Sample {
		s := &profile.Sample{}
		for _, fn := range fns { // innermost first, as in a profile
			s.Location = append(s.Location, &profile.Location{Line: []profile.Line{{Function: &profile.Function{Name: fn}}}})
		}
		return s
	}
	const (
		watch  = "github.com/kubestitch/kubestitch/receiver/k8swatchreceiver."
		stitch = "github.com/kubestitch/kubestitch/processor/k8sstitchprocessor."
		intern = "github.com/kubestitch/kubestitch/internal/intern.(*Table).String"
	)
	for want, s := range map[string]*profile.Sample{
		"cache":   sample("runtime.mallocgc", watch+"newCachedObject", watch+"newTransform.func1", "k8s.io/client-go/tools/cache.(*DeltaFIFO).Replace"),
		"tracker": sample("runtime.mallocgc", intern, watch+"viewOf", watch+"newCachedObject", "k8s.io/client-go/tools/cache.(*DeltaFIFO).Replace"),
		"stitch":  sample("runtime.mallocgc", stitch+"(*ownerGraph).learn", stitch+"(*stitchProcessor).ConsumeTraces"),
		"other":   sample("runtime.mallocgc", "google.golang.org/grpc.(*Server).serveStreams"),
	} {
		assert.Equal(t, want, shareOf(s), "%v", s.Location[1].Line[0].Function.Name)
	}
}
