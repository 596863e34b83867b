package deploy

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/localcluster"
)

// warnings collects what the API server warns about (kubectl apply prints
// these: a Pod Security violation of a template shows here first).
type warnings struct {
	mu   sync.Mutex
	seen []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.seen
	w.seen = nil
	return out
}

// resources maps each object to the dynamic client of its kind (and
// namespace), as kubectl does through discovery.
func resources(t *testing.T, cfg *rest.Config) func(*unstructured.Unstructured) dynamic.ResourceInterface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return func(obj *unstructured.Unstructured) dynamic.ResourceInterface {
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		require.NoError(t, err, gvk.String())
		if obj.GetNamespace() != "" {
			return dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
		}
		return dyn.Resource(m.Resource)
	}
}

// apply applies objects for real, as kubectl apply --server-side does.
func apply(t *testing.T, cfg *rest.Config, objs []*unstructured.Unstructured) {
	t.Helper()
	resource := resources(t, cfg)
	// Namespaces first, as kubectl orders them.
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return boolInt(b.GetKind() == "Namespace") - boolInt(a.GetKind() == "Namespace")
	})
	for _, obj := range objs {
		body, err := obj.MarshalJSON()
		require.NoError(t, err)
		_, err = resource(obj).Patch(t.Context(), obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "kubestitch-install-test", Force: ptr.To(true)})
		require.NoError(t, err, "apply %s %s/%s", obj.GetKind(), obj.GetNamespace(), obj.GetName())
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestInstallAdmitsEveryPod applies each overlay for real to a control
// plane with several nodes (kwok nodes, and a real kubelet's when this
// machine can run one), Pod Security admission on and the namespaces
// labelled as shipped. The DaemonSet controller must create an agent pod on
// every node and the Deployment controller every gateway pod, with no
// FailedCreate and no Pod Security warning at apply.
func TestInstallAdmitsEveryPod(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local control plane; `make test` runs it")
	}
	ctx := t.Context()
	opts := localcluster.Options{Nodes: 3, Log: localcluster.TestLog(t)}
	if os.Geteuid() == 0 {
		opts.Kubelet = &localcluster.KubeletOptions{}
	}
	cluster, err := localcluster.Up(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(cluster.Down)
	w := &warnings{}
	cfg := rest.CopyConfig(cluster.RESTConfig)
	cfg.WarningHandlerWithContext = w
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(nodes.Items), 3)

	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			objs := append(build(t, overlay), installSecrets(t)...)
			if overlay == "single-gateway-admission" {
				objs = append(objs, selfSigned(t)...)
			}
			namespaces := map[string]bool{}
			for _, obj := range objs {
				if obj.GetKind() == "Namespace" {
					namespaces[obj.GetName()] = true
				}
			}
			// The next overlay starts from nothing, whatever this one found.
			t.Cleanup(func() { uninstall(t, client, cfg, objs, namespaces) })
			apply(t, cfg, objs)
			for _, warn := range w.take() {
				assert.NotContains(t, warn, "PodSecurity", "kubectl apply would print: %s", warn)
			}
			for _, obj := range objs {
				switch obj.GetKind() {
				case "DaemonSet":
					waitPods(t, client, obj, len(nodes.Items), func(pods []corev1.Pod) string {
						var missing []string
						for _, n := range nodes.Items {
							if !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.Spec.NodeName == n.Name }) {
								missing = append(missing, n.Name)
							}
						}
						if len(missing) > 0 {
							return "no agent pod on " + strings.Join(missing, ", ")
						}
						return ""
					})
				case "Deployment":
					replicas, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
					waitPods(t, client, obj, int(replicas), nil)
				}
			}
			for ns := range namespaces {
				evs, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
				require.NoError(t, err)
				for _, ev := range evs.Items {
					assert.NotEqual(t, "FailedCreate", ev.Reason, "%s %s: %s", ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Message)
				}
			}
		})
	}
}

// waitPods waits until the workload's controller created want pods that
// problem (if any) finds nothing wrong with, and says what it saw if not.
func waitPods(t *testing.T, client kubernetes.Interface, obj *unstructured.Unstructured, want int, problem func([]corev1.Pod) string) {
	t.Helper()
	sel, _, _ := unstructured.NestedStringMap(obj.Object, "spec", "selector", "matchLabels")
	var labels []string
	for k, v := range sel {
		labels = append(labels, k+"="+v)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		pods, err := client.CoreV1().Pods(obj.GetNamespace()).List(t.Context(), metav1.ListOptions{LabelSelector: strings.Join(labels, ",")})
		require.NoError(t, err)
		saw := fmt.Sprintf("%d of %d pods", len(pods.Items), want)
		if len(pods.Items) >= want {
			saw = ""
			if problem != nil {
				saw = problem(pods.Items)
			}
			if saw == "" {
				return
			}
		}
		if time.Now().After(deadline) {
			evs, _ := client.CoreV1().Events(obj.GetNamespace()).List(t.Context(), metav1.ListOptions{})
			var b strings.Builder
			for _, ev := range evs.Items {
				if ev.InvolvedObject.Name == obj.GetName() {
					fmt.Fprintf(&b, "\n  %s %s: %s", ev.Type, ev.Reason, ev.Message)
				}
			}
			t.Fatalf("%s %s/%s: %s after 90s; its Events:%s", obj.GetKind(), obj.GetNamespace(), obj.GetName(), saw, b.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// uninstall deletes what apply created and waits until its namespaces are
// gone, so the next overlay starts from nothing.
func uninstall(t *testing.T, client kubernetes.Interface, cfg *rest.Config, objs []*unstructured.Unstructured, namespaces map[string]bool) {
	t.Helper()
	// A cleanup: the test's own context is done by now.
	ctx := context.Background()
	resource := resources(t, cfg)
	for _, obj := range objs {
		if obj.GetNamespace() != "" || obj.GetKind() == "Namespace" {
			continue // goes with its namespace
		}
		err := resource(obj).Delete(ctx, obj.GetName(), metav1.DeleteOptions{})
		if !apierrors.IsNotFound(err) {
			require.NoError(t, err)
		}
	}
	for ns := range namespaces {
		if err := client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
			require.NoError(t, err)
		}
	}
	require.Eventually(t, func() bool {
		for ns := range namespaces {
			if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false
			}
		}
		return true
	}, 2*time.Minute, time.Second, "the namespaces of the install are deleted")
}
