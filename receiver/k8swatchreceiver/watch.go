package k8swatchreceiver

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// source is one kind to watch: how to list and watch it in a namespace
// ("" for all), and an example object for the informer.
type source struct {
	kind       string
	example    runtime.Object
	namespaced bool
	list       func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error)
	watch      func(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error)
	// labelled says whether the label selector applies to this kind.
	labelled bool
}

func builtinSource(c kubernetes.Interface, kind string) source {
	switch kind {
	case "Pod":
		return source{kind, &corev1.Pod{}, true,
			func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
				return c.CoreV1().Pods(ns).List(ctx, o)
			},
			func(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
				return c.CoreV1().Pods(ns).Watch(ctx, o)
			}, true}
	case "ReplicaSet":
		return source{kind, &appsv1.ReplicaSet{}, true,
			func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
				return c.AppsV1().ReplicaSets(ns).List(ctx, o)
			},
			func(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
				return c.AppsV1().ReplicaSets(ns).Watch(ctx, o)
			}, true}
	case "Deployment":
		return source{kind, &appsv1.Deployment{}, true,
			func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
				return c.AppsV1().Deployments(ns).List(ctx, o)
			},
			func(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
				return c.AppsV1().Deployments(ns).Watch(ctx, o)
			}, true}
	case "StatefulSet":
		return source{kind, &appsv1.StatefulSet{}, true,
			func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
				return c.AppsV1().StatefulSets(ns).List(ctx, o)
			},
			func(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
				return c.AppsV1().StatefulSets(ns).Watch(ctx, o)
			}, true}
	case "DaemonSet":
		return source{kind, &appsv1.DaemonSet{}, true,
			func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
				return c.AppsV1().DaemonSets(ns).List(ctx, o)
			},
			func(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
				return c.AppsV1().DaemonSets(ns).Watch(ctx, o)
			}, true}
	case "Job":
		return source{kind, &batchv1.Job{}, true,
			func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
				return c.BatchV1().Jobs(ns).List(ctx, o)
			},
			func(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
				return c.BatchV1().Jobs(ns).Watch(ctx, o)
			}, true}
	case "CronJob":
		return source{kind, &batchv1.CronJob{}, true,
			func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
				return c.BatchV1().CronJobs(ns).List(ctx, o)
			},
			func(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
				return c.BatchV1().CronJobs(ns).Watch(ctx, o)
			}, true}
	case "Node":
		return source{kind, &corev1.Node{}, false,
			func(ctx context.Context, _ string, o metav1.ListOptions) (runtime.Object, error) {
				return c.CoreV1().Nodes().List(ctx, o)
			},
			func(ctx context.Context, _ string, o metav1.ListOptions) (watch.Interface, error) {
				return c.CoreV1().Nodes().Watch(ctx, o)
			}, false}
	case "Event":
		return source{kind, &eventsv1.Event{}, true,
			func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
				return c.EventsV1().Events(ns).List(ctx, o)
			},
			func(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
				return c.EventsV1().Events(ns).Watch(ctx, o)
			}, false}
	}
	panic(fmt.Sprintf("no source for kind %q: Validate admits only builtinKinds", kind))
}

func dynamicSource(c dynamic.Interface, cr CustomResource) source {
	gvr := schema.GroupVersionResource{Group: cr.Group, Version: cr.Version, Resource: cr.Resource}
	return source{cr.Resource + "." + cr.Group, &unstructured.Unstructured{}, true,
		func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return c.Resource(gvr).Namespace(ns).List(ctx, o)
		},
		func(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
			return c.Resource(gvr).Namespace(ns).Watch(ctx, o)
		}, true}
}

// listWatch restricts a source to a namespace, the label selector and, in
// node mode, to the pods of one node.
func (s source) listWatch(ns string, cfg *Config) *cache.ListWatch {
	if !s.namespaced {
		ns = ""
	}
	tweak := func(o *metav1.ListOptions) {
		if s.labelled {
			o.LabelSelector = cfg.LabelSelector
		}
		if cfg.Mode == ModeNode && s.kind == "Pod" {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
		}
		if cfg.Mode == ModeNode && s.kind == "Event" {
			// Only Events about pods; the tracker keeps those of this node's.
			o.FieldSelector = fields.OneTermEqualSelector("regarding.kind", "Pod").String()
		}
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			tweak(&o)
			return s.list(ctx, ns, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			tweak(&o)
			return s.watch(ctx, ns, o)
		},
	}
}
