package deploy

import (
	"fmt"
	"sort"
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
	// heapAlloc is the runtime's exact count of bytes in use on the Go
	// heap right after the GC (MemStats.HeapAlloc); the shares below are
	// the profile's estimates, which add up to about as much.
	heapAlloc float64
	// cache is the informers' (client-go's store, queue and the transform's
	// key-only records), tracker k8swatch's own state (the tracker and the
	// object views it keeps), stitch k8sstitch's (owner graph, operations,
	// waiting spans); other is the rest of the collector (OTLP, batching,
	// exporters, the runtime).
	cache, tracker, stitch, other share
	// sites are the estimated bytes of each holder's allocation sites
	// (holder: the innermost frame that named it).
	sites map[string]float64
}

// topSites are the n largest allocation sites of holder, for a log line.
func (h heapShares) topSites(holder string, n int) string {
	var names []string
	for site := range h.sites {
		if strings.HasPrefix(site, holder+": ") {
			names = append(names, site)
		}
	}
	sort.Slice(names, func(i, j int) bool { return h.sites[names[i]] > h.sites[names[j]] })
	var out []string
	for _, site := range names[:min(n, len(names))] {
		out = append(out, fmt.Sprintf("%s %.1f MiB", strings.TrimPrefix(site, holder+": "), h.sites[site]/(1<<20)))
	}
	return strings.Join(out, ", ")
}

// share is one holder's estimated bytes and the number of sampled
// allocations behind the estimate: its relative error is about
// 1/sqrt(samples).
type share struct {
	bytes   float64
	samples int
}

func (s *share) add(v float64) { s.bytes += v; s.samples++ }

func (s share) String() string {
	return fmt.Sprintf("%.1f MiB (%d samples)", s.bytes/(1<<20), s.samples)
}

// shareOf names what holds a sample's bytes by the innermost frame of its
// stack that belongs to one of them. The interning table is skipped: a
// string it keeps is there for the frame that asked.
func shareOf(s *profile.Sample) string {
	holder, _ := holderOf(s)
	return holder
}

// holderOf is shareOf's holder and the frame that named it.
func holderOf(s *profile.Sample) (holder, site string) {
	for _, loc := range s.Location {
		for _, line := range loc.Line { // innermost first, inlined frames included
			if line.Function == nil {
				continue
			}
			fn := line.Function.Name
			short := fn[strings.LastIndex(fn, "/")+1:]
			switch {
			case strings.Contains(fn, "/processor/k8sstitchprocessor."):
				return "stitch", short
			case strings.Contains(fn, "/receiver/k8swatchreceiver.newCached"): // newCachedObject, newCachedEvent
				return "cache", short
			case strings.Contains(fn, "/receiver/k8swatchreceiver."):
				return "tracker", short
			case strings.Contains(fn, "k8s.io/client-go/tools/cache."):
				return "cache", short
			}
		}
	}
	return "other", firstOutsideRuntime(s)
}

// firstOutsideRuntime names the rest of the collector's sample by its
// innermost frame outside the runtime and the standard containers.
func firstOutsideRuntime(s *profile.Sample) string {
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			if line.Function == nil {
				continue
			}
			fn := line.Function.Name
			if strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/") || strings.HasPrefix(fn, "slices.") ||
				strings.HasPrefix(fn, "bytes.") || strings.HasPrefix(fn, "strings.") || strings.HasPrefix(fn, "reflect.") {
				continue
			}
			return fn[strings.LastIndex(fn, "/")+1:]
		}
	}
	return ""
}

// gatewayHeap forces a GC in p's gateway and reads its heap: the exact
// total from the text profile's MemStats, the split from the profile's
// samples, which describe the heap as of that GC.
func gatewayHeap(runner *podrunner.Runner, p *podrunner.Pod) (heapShares, error) {
	var h heapShares
	text, err := runner.Get(p, "http://127.0.0.1:1777/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return h, err
	}
	_, after, ok := strings.Cut(text, "\n# HeapAlloc = ")
	if !ok {
		return h, fmt.Errorf("%s/%s heap profile has no HeapAlloc", p.Namespace, p.Name)
	}
	if _, err := fmt.Sscan(after, &h.heapAlloc); err != nil {
		return h, fmt.Errorf("%s/%s HeapAlloc: %w", p.Namespace, p.Name, err)
	}
	body, err := runner.Get(p, "http://127.0.0.1:1777/debug/pprof/heap")
	if err != nil {
		return h, err
	}
	prof, err := profile.Parse(strings.NewReader(body))
	if err != nil {
		return h, fmt.Errorf("%s/%s heap profile: %w", p.Namespace, p.Name, err)
	}
	inuse := -1
	for i, st := range prof.SampleType {
		if st.Type == "inuse_space" {
			inuse = i
		}
	}
	if inuse < 0 {
		return h, fmt.Errorf("%s/%s heap profile has no inuse_space", p.Namespace, p.Name)
	}
	for _, s := range prof.Sample {
		v := float64(s.Value[inuse])
		if v == 0 {
			continue
		}
		holder, site := holderOf(s)
		if h.sites == nil {
			h.sites = map[string]float64{}
		}
		h.sites[holder+": "+site] += v
		switch holder {
		case "cache":
			h.cache.add(v)
		case "tracker":
			h.tracker.add(v)
		case "stitch":
			h.stitch.add(v)
		default:
			h.other.add(v)
		}
	}
	return h, nil
}

func (h heapShares) String() string {
	return fmt.Sprintf("heap %.1f MiB after a GC; of it, estimated: informer cache %v, k8swatch tracker %v, k8sstitch %v, rest of the collector %v",
		h.heapAlloc/(1<<20), h.cache, h.tracker, h.stitch, h.other)
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
		"cache ":  sample("runtime.mallocgc", watch+"newCachedEvent", watch+"newTransform.func1", "k8s.io/client-go/tools/cache.(*DeltaFIFO).Replace"),
		"tracker": sample("runtime.mallocgc", intern, watch+"viewOf", watch+"newCachedObject", "k8s.io/client-go/tools/cache.(*DeltaFIFO).Replace"),
		"stitch":  sample("runtime.mallocgc", stitch+"(*ownerGraph).learn", stitch+"(*stitchProcessor).ConsumeTraces"),
		"other":   sample("runtime.mallocgc", "google.golang.org/grpc.(*Server).serveStreams"),
	} {
		assert.Equal(t, strings.TrimSpace(want), shareOf(s), "%v", s.Location[1].Line[0].Function.Name)
	}
}
