package k8swatchreceiver

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// realisticPod is a pod as the API returns it: managedFields of three
// managers, labels, annotations, two containers with env, args, mounts,
// volumes, tolerations and a full status.
func realisticPod(uid string) *corev1.Pod {
	p := testPod(uid)
	p.Labels = map[string]string{"app": "web", "pod-template-hash": "7c9cb467c4", "tier": "frontend"}
	p.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-25T10:00:00Z", "prometheus.io/scrape": "true"}
	fields := metav1.NewFieldsV1(`{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}`)
	now := metav1.NewTime(t0)
	p.ManagedFields = []metav1.ManagedFieldsEntry{
		{Manager: "kube-controller-manager", Operation: "Update", Time: &now, FieldsType: "FieldsV1", FieldsV1: fields},
		{Manager: "kube-scheduler", Operation: "Update", Time: &now, FieldsType: "FieldsV1", FieldsV1: fields, Subresource: "status"},
		{Manager: "kubelet", Operation: "Update", Time: &now, FieldsType: "FieldsV1", FieldsV1: fields, Subresource: "status"},
	}
	c := corev1.Container{
		Name: "app", Image: "registry.example/web:1", Args: []string{"--port=8080", "--verbose"},
		Env:          []corev1.EnvVar{{Name: "MODE", Value: "prod"}, {Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "t"}}}},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "kube-api-access", MountPath: "/var/run/secrets"}},
		Ports:        []corev1.ContainerPort{{ContainerPort: 8080}},
	}
	side := c
	side.Name, side.Image = "sidecar", "registry.example/proxy:1"
	p.Spec.Containers = []corev1.Container{c, side}
	p.Spec.Volumes = []corev1.Volume{{Name: "data"}, {Name: "kube-api-access"}}
	p.Spec.Tolerations = []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Effect: "NoExecute", TolerationSeconds: ptr.To(int64(300))}}
	return p
}

// lifecycle is the watch events of one pod's startup: created, scheduled,
// containers running, ready.
func lifecycle(uid string) [][]byte {
	p := realisticPod(uid)
	s := scheduled(p, t0.Add(time.Second))
	r := s.DeepCopy()
	r.ResourceVersion = "3"
	r.Status.Phase = corev1.PodRunning
	for _, c := range r.Spec.Containers {
		r.Status.ContainerStatuses = append(r.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "sha256:abc", ContainerID: "containerd://123",
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(t0.Add(2 * time.Second))}}})
	}
	ready := r.DeepCopy()
	ready.ResourceVersion = "4"
	ready.Status.Conditions = append(ready.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0.Add(3 * time.Second))})
	var out [][]byte
	for _, o := range []*corev1.Pod{p, s, r, ready} {
		b, err := json.Marshal(o)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

// BenchmarkPodEvents: one op = one decoded pod watch event turned into
// the fragments it yields (transform, view, phase logic, OTLP spans).
// BenchmarkPodDecode is the baseline in the same run: decoding that watch
// event from JSON, which client-go does for every event anyway.
func BenchmarkPodEvents(b *testing.B) {
	const pods = 256
	events := make([]*corev1.Pod, 0, pods*4)
	for i := range pods {
		for _, raw := range lifecycle(fmt.Sprintf("pod-%d", i)) {
			p := &corev1.Pod{}
			require.NoError(b, json.Unmarshal(raw, p))
			events = append(events, p)
		}
	}
	transform := newTransform(nil, "")
	b.ReportAllocs()
	b.ResetTimer()
	var tr *tracker
	var fresh []*corev1.Pod
	frags := 0
	for i := range b.N {
		k := i % len(events)
		if k == 0 {
			// A new tracker and fresh copies for each pass: the transform
			// mutates its object, as in the informer.
			b.StopTimer()
			tr = newTracker()
			fresh = fresh[:0]
			for _, e := range events {
				fresh = append(fresh, e.DeepCopy())
			}
			b.StartTimer()
		}
		o, _ := transform(fresh[k])
		v := o.(*cachedObject).take().view
		out := tr.observe(*v, t0.Add(time.Duration(i)), false)
		if len(out) > 0 {
			_ = toTraces(out, "bench")
			frags += len(out)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(frags)/float64(b.N), "spans/event")
}

func BenchmarkPodDecode(b *testing.B) {
	raw := lifecycle("pod-1")
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := &corev1.Pod{}
		if err := json.Unmarshal(raw[i%len(raw)], p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkCacheBytesPerPod reports the informer cache's memory per pod
// after the transform, against the pod as decoded.
func BenchmarkCacheBytesPerPod(b *testing.B) {
	const n = 20_000
	measure := func(strip bool) float64 {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		keep := make([]any, n)
		transform := newTransform(nil, "")
		raw := lifecycle("x")[3]
		for i := range n {
			p := &corev1.Pod{}
			_ = json.Unmarshal(raw, p)
			p.UID = types.UID(fmt.Sprintf("uid-%d", i))
			if strip {
				// What stays in the cache once the handler took the view.
				o, _ := transform(p)
				o.(*cachedObject).take()
				keep[i] = o
			} else {
				keep[i] = p
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(keep)
		return float64(after.HeapAlloc-before.HeapAlloc) / n
	}
	for range b.N {
		b.ReportMetric(measure(false), "B/pod-decoded")
		b.ReportMetric(measure(true), "B/pod-cached")
	}
}

// BenchmarkQuietTick is the receiver's pass over its objects each second,
// as an agent of 250 pods has it mid-rollout (50 of them starting), with
// reannouncement off (the baseline) and on: what sending the open
// operations again costs the tick. Each iteration is a second: run it
// with -benchtime 500x or fewer, since past resumeWindow (600 ticks) the
// starting pods are no longer reannounced.
func BenchmarkQuietTick(b *testing.B) {
	for _, every := range []time.Duration{0, time.Second} {
		b.Run(fmt.Sprintf("reannounce=%v", every), func(b *testing.B) {
			tr := newTracker()
			for i := range 250 {
				p := testPod(fmt.Sprintf("pod-%d", i))
				if i >= 50 {
					p = running(scheduled(p, t0), t0)
				}
				tr.observe(viewPod(p, nil), t0, i >= 50)
			}
			now := t0.Add(time.Second)
			tr.quiet(now, time.Hour, every)
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Second)
				tr.quiet(now, time.Hour, every)
			}
		})
	}
}
