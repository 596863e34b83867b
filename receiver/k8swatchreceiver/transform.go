package k8swatchreceiver

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// newTransform strips from every object what no phase needs before it
// reaches the informer's cache: managedFields but the newest entry (without
// its field set), labels, annotations outside the allow-list, pod templates,
// and from pods everything but what the steps read (env, args, volumes go).
// This is most of an object's bytes, and it keeps secrets out of memory too.
//
// node is the node of a node-mode receiver ("" in cluster mode): Events
// that another node's kubelet reported are cut down to their key, since
// every agent watches every pod Event of the cluster (the API cannot
// select Events by node: their selectable fields are regarding.*, reason,
// reportingController, source and type).
func newTransform(allow map[string]bool, node string) func(any) (any, error) {
	return func(obj any) (any, error) {
		switch o := obj.(type) {
		case *eventsv1.Event:
			return trimEvent(o, node), nil
		case *corev1.Pod:
			stripMeta(&o.ObjectMeta, allow)
			spec := corev1.PodSpec{NodeName: o.Spec.NodeName, SchedulerName: o.Spec.SchedulerName}
			if len(o.Spec.InitContainers) > 0 {
				// Only their presence matters.
				spec.InitContainers = []corev1.Container{{Name: o.Spec.InitContainers[0].Name}}
			}
			o.Spec = spec
			o.Status = corev1.PodStatus{
				Phase:             o.Status.Phase,
				Conditions:        o.Status.Conditions,
				ContainerStatuses: o.Status.ContainerStatuses,
			}
			for i := range o.Status.ContainerStatuses {
				cs := &o.Status.ContainerStatuses[i]
				cs.LastTerminationState = corev1.ContainerState{}
				cs.ImageID, cs.ContainerID = "", ""
				cs.Resources, cs.AllocatedResources, cs.VolumeMounts, cs.User = nil, nil, nil, nil
			}
		case *appsv1.Deployment:
			stripMeta(&o.ObjectMeta, allow)
			o.Spec.Template = corev1.PodTemplateSpec{}
		case *appsv1.ReplicaSet:
			stripMeta(&o.ObjectMeta, allow)
			o.Spec.Template = corev1.PodTemplateSpec{}
		case *appsv1.StatefulSet:
			stripMeta(&o.ObjectMeta, allow)
			o.Spec.Template = corev1.PodTemplateSpec{}
			o.Spec.VolumeClaimTemplates = nil
		case *appsv1.DaemonSet:
			stripMeta(&o.ObjectMeta, allow)
			o.Spec.Template = corev1.PodTemplateSpec{}
		case *batchv1.Job:
			stripMeta(&o.ObjectMeta, allow)
			o.Spec.Template = corev1.PodTemplateSpec{}
		case *batchv1.CronJob:
			stripMeta(&o.ObjectMeta, allow)
			o.Spec.JobTemplate = batchv1.JobTemplateSpec{}
		case *corev1.Node:
			stripMeta(&o.ObjectMeta, allow)
			o.Status = corev1.NodeStatus{Conditions: o.Status.Conditions}
			o.Spec = corev1.NodeSpec{}
		case *unstructured.Unstructured:
			// Keep metadata and status, drop spec (may carry anything).
			delete(o.Object, "spec")
			delete(o.Object, "data")
			meta := metav1.ObjectMeta{ManagedFields: o.GetManagedFields(), Annotations: o.GetAnnotations()}
			stripMeta(&meta, allow)
			o.SetManagedFields(meta.ManagedFields)
			o.SetAnnotations(meta.Annotations)
			o.SetLabels(nil)
		}
		return obj, nil
	}
}

// maxCachedNote bounds an Event's note in the cache: enough for the
// kubelet's "Successfully pulled image ... in 1.2s" with a long image
// name; the span gets at most maxNoteLen of it.
const maxCachedNote = 1024

// trimEvent keeps what viewEventsV1 reads, in a new object: the watch's
// decoded Event (managed fields, series, related object, annotations)
// goes to the garbage collector. An Event another node's kubelet reported
// is kept as its key only (the informer must still know it, or its next
// update would look new): the handler skips it.
func trimEvent(e *eventsv1.Event, node string) runtime.Object {
	meta := metav1.ObjectMeta{Name: e.Name, Namespace: e.Namespace, UID: e.UID, ResourceVersion: e.ResourceVersion}
	if node != "" && e.ReportingController == "kubelet" && e.ReportingInstance != "" && e.ReportingInstance != node {
		return &metav1.PartialObjectMetadata{ObjectMeta: meta}
	}
	meta.CreationTimestamp = e.CreationTimestamp
	return &eventsv1.Event{
		ObjectMeta:              meta,
		EventTime:               e.EventTime,
		DeprecatedLastTimestamp: e.DeprecatedLastTimestamp,
		Reason:                  e.Reason,
		Type:                    e.Type,
		Note:                    fragment.TruncateUTF8(e.Note, maxCachedNote),
		ReportingController:     e.ReportingController,
		ReportingInstance:       e.ReportingInstance,
		Regarding:               corev1.ObjectReference{Kind: e.Regarding.Kind, UID: e.Regarding.UID, FieldPath: e.Regarding.FieldPath},
	}
}

func stripMeta(m *metav1.ObjectMeta, allow map[string]bool) {
	if len(m.ManagedFields) > 0 {
		// Keep the entries the view reads (managers), without their field
		// sets.
		var kept []metav1.ManagedFieldsEntry
		main, status := managers(m.ManagedFields)
		for _, i := range []int{main, status} {
			if i >= 0 {
				e := m.ManagedFields[i]
				kept = append(kept, metav1.ManagedFieldsEntry{Manager: e.Manager, Operation: e.Operation, Time: e.Time, Subresource: e.Subresource})
			}
		}
		m.ManagedFields = kept
	}
	m.Labels = nil
	for k := range m.Annotations {
		if !allow[k] && k != fragment.AnnotationTraceparent && k != fragment.AnnotationLegacyTraceparent {
			delete(m.Annotations, k)
		}
	}
}

func newer(t, than *metav1.Time) bool {
	return t != nil && (than == nil || !t.Before(than))
}

// transformNode is the node whose kubelet's Events a node-mode receiver
// keeps whole.
func (r *watchReceiver) transformNode() string {
	if r.cfg.Mode == ModeNode {
		return r.cfg.NodeName
	}
	return ""
}
