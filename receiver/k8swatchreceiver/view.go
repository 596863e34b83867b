package k8swatchreceiver

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// objectView is what the phase logic needs of any watched object; the
// per-kind functions below fill it, so the tracker is kind-agnostic except
// for pods, which have steps of their own.
type objectView struct {
	kind, namespace, name, uid string
	generation                 int64
	resourceVersion            string
	ownerKind, ownerUID        string
	// nodeAgent wrote the status last of those that run pods (kubelet,
	// kwok): see statusWriterRunsPods.
	nodeAgent string
	// deleting is set from metadata.deletionTimestamp (see deleteStart).
	deleting bool
	// converged is the kind's convergence rule (see convergedAt).
	converged bool
	pod       *podView
	// The rest is read by the observation that brings the view and while
	// the object's operation is open: a resting object's state points at
	// restingDetail instead (objectState.compact). Most of a cluster's
	// objects rest, so this is most of the tracker's memory saved.
	*viewDetail
}

// viewDetail is the part of a view a resting object does without.
type viewDetail struct {
	created time.Time
	// deleteStart is when the deletion was requested (deletionTimestamp
	// minus the grace period).
	deleteStart time.Time
	// manager and managedAt come from the newest managedFields entry of the
	// object itself (or of its scale subresource): who made the last spec
	// or metadata change, and when.
	manager     string
	managedAt   time.Time
	traceparent string
	annotations map[string]string
	// convergedAt is the object's own timestamp of convergence when one
	// exists (zero otherwise).
	convergedAt time.Time
	// failed says the operation ended without converging, as the object
	// says: "Reason: message" (a Deployment past its progress deadline).
	failed string
}

// restingDetail is the detail of every resting object: zero, and never
// written (views are built with a detail of their own, in metaView).
var restingDetail = &viewDetail{}

// podView is what the pod steps need.
type podView struct {
	node          string
	scheduler     string
	scheduled     bool
	scheduledAt   time.Time
	hasInit       bool
	initialized   bool
	initializedAt time.Time
	ready         bool
	readyAt       time.Time
	terminal      bool
	// running is phase Running: clusterloader2's moment of "watch".
	running    bool
	containers []containerView
}

type containerView struct {
	name      string
	image     string
	restarts  int32
	running   bool
	startedAt time.Time
	// waiting is the reason a container waits (ImagePullBackOff,
	// CrashLoopBackOff), to name the step a Warning blocks.
	waiting string
}

func metaView(kind string, m *metav1.ObjectMeta, allow map[string]bool) objectView {
	v := objectView{
		kind:            kind,
		namespace:       m.Namespace,
		name:            m.Name,
		uid:             string(m.UID),
		generation:      m.Generation,
		resourceVersion: m.ResourceVersion,
		viewDetail:      &viewDetail{created: m.CreationTimestamp.Time},
	}
	if v.generation == 0 {
		v.generation = 1
	}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		v.ownerKind, v.ownerUID = ref.Kind, string(ref.UID)
	}
	if m.DeletionTimestamp != nil {
		v.deleting = true
		v.deleteStart = m.DeletionTimestamp.Time
		if m.DeletionGracePeriodSeconds != nil {
			v.deleteStart = v.deleteStart.Add(-time.Duration(*m.DeletionGracePeriodSeconds) * time.Second)
		}
	}
	main, status := managers(m.ManagedFields)
	if main >= 0 {
		v.manager = m.ManagedFields[main].Manager
		if t := m.ManagedFields[main].Time; t != nil {
			v.managedAt = t.Time
		}
	}
	if status >= 0 {
		v.nodeAgent = m.ManagedFields[status].Manager
	}
	if tp, ok := m.Annotations[fragment.AnnotationTraceparent]; ok {
		v.traceparent = tp
	} else if tp, ok := m.Annotations[fragment.AnnotationLegacyTraceparent]; ok {
		v.traceparent = tp
	}
	for k, val := range m.Annotations {
		if allow[k] {
			if v.annotations == nil {
				v.annotations = map[string]string{}
			}
			v.annotations[k] = val
		}
	}
	return v
}

// managers picks the two managedFields entries the phases need, as
// indexes (-1: none): the newest change of the object itself or of its
// scale subresource (kubectl scale, an autoscaler: a spec change too), and
// the newest status write of a manager that runs pods. Ties (timestamps are
// whole seconds) go to the later entry: entries are appended as managers
// first write. The informer transform keeps just these two.
func managers(fields []metav1.ManagedFieldsEntry) (main, status int) {
	main, status = -1, -1
	for i := range fields {
		e := &fields[i]
		switch {
		case e.Subresource == "" || e.Subresource == "scale":
			if main < 0 || newer(e.Time, fields[main].Time) {
				main = i
			}
		case e.Subresource == "status" && statusWriterRunsPods(e.Manager):
			if status < 0 || newer(e.Time, fields[status].Time) {
				status = i
			}
		}
	}
	return main, status
}

// statusWriterRunsPods says whether a manager that wrote a pod's or node's
// status is the node agent that runs its pods. The scheduler writes a
// pod's PodScheduled condition, and the controller manager writes a node's
// NotReady and its pods' Ready=False when the node stops reporting, or a
// DisruptionTarget condition before an eviction; whether such a write comes
// after the node agent's last one is a matter of timing, so it must not
// decide who ran, or finished deleting, the pod.
func statusWriterRunsPods(manager string) bool {
	return manager != "kube-scheduler" && manager != "kube-controller-manager"
}

func viewDeployment(d *appsv1.Deployment, allow map[string]bool) objectView {
	v := metaView("Deployment", &d.ObjectMeta, allow)
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	v.converged = s.ObservedGeneration >= d.Generation &&
		s.UpdatedReplicas == want && s.AvailableReplicas == want && s.Replicas == want
	for _, c := range s.Conditions {
		switch {
		case c.Type != appsv1.DeploymentProgressing:
		case v.converged && c.Reason == "NewReplicaSetAvailable":
			v.convergedAt = c.LastUpdateTime.Time
		case !v.converged && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" && s.ObservedGeneration >= d.Generation:
			// Bounded like an Event's note: a condition message is any length.
			v.failed = fragment.TruncateUTF8(c.Reason+": "+c.Message, maxNoteLen)
		}
	}
	return v
}

func viewReplicaSet(rs *appsv1.ReplicaSet, allow map[string]bool) objectView {
	v := metaView("ReplicaSet", &rs.ObjectMeta, allow)
	want := int32(1)
	if rs.Spec.Replicas != nil {
		want = *rs.Spec.Replicas
	}
	s := rs.Status
	v.converged = s.ObservedGeneration >= rs.Generation && s.Replicas == want && s.AvailableReplicas == want
	return v
}

func viewStatefulSet(ss *appsv1.StatefulSet, allow map[string]bool) objectView {
	v := metaView("StatefulSet", &ss.ObjectMeta, allow)
	want := int32(1)
	if ss.Spec.Replicas != nil {
		want = *ss.Spec.Replicas
	}
	s := ss.Status
	v.converged = s.ObservedGeneration >= ss.Generation && s.CurrentRevision == s.UpdateRevision && s.ReadyReplicas == want
	return v
}

func viewDaemonSet(ds *appsv1.DaemonSet, allow map[string]bool) objectView {
	v := metaView("DaemonSet", &ds.ObjectMeta, allow)
	s := ds.Status
	v.converged = s.ObservedGeneration >= ds.Generation &&
		s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberAvailable == s.DesiredNumberScheduled
	return v
}

func viewJob(j *batchv1.Job, allow map[string]bool) objectView {
	v := metaView("Job", &j.ObjectMeta, allow)
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			v.converged, v.convergedAt = true, c.LastTransitionTime.Time
		}
	}
	return v
}

// viewCronJob: a CronJob has no status of convergence; its spec change is
// done when the controller has seen it, and the Jobs it starts later are
// operations of their own.
func viewCronJob(cj *batchv1.CronJob, allow map[string]bool) objectView {
	v := metaView("CronJob", &cj.ObjectMeta, allow)
	v.converged = true
	return v
}

func viewNode(n *corev1.Node, allow map[string]bool) objectView {
	v := metaView("Node", &n.ObjectMeta, allow)
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			v.converged, v.convergedAt = true, c.LastTransitionTime.Time
		}
	}
	return v
}

func viewPod(p *corev1.Pod, allow map[string]bool) objectView {
	v := metaView("Pod", &p.ObjectMeta, allow)
	// A pod's spec barely changes after creation; its one operation of its
	// own is the startup, so its generation is not a trigger.
	v.generation = 1
	pv := &podView{
		node:      p.Spec.NodeName,
		scheduler: p.Spec.SchedulerName,
		hasInit:   len(p.Spec.InitContainers) > 0,
		terminal:  p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed,
		running:   p.Status.Phase == corev1.PodRunning,
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case corev1.PodScheduled:
			pv.scheduled, pv.scheduledAt = true, c.LastTransitionTime.Time
		case corev1.PodInitialized:
			pv.initialized, pv.initializedAt = true, c.LastTransitionTime.Time
		case corev1.PodReady:
			pv.ready, pv.readyAt = true, c.LastTransitionTime.Time
		}
	}
	if pv.scheduled && p.Spec.NodeName == "" {
		pv.scheduled = false
	}
	pv.containers = make([]containerView, 0, len(p.Status.ContainerStatuses))
	for i := range p.Status.ContainerStatuses {
		cs := &p.Status.ContainerStatuses[i]
		cv := containerView{name: cs.Name, image: cs.Image, restarts: cs.RestartCount}
		if cs.State.Running != nil {
			cv.running, cv.startedAt = true, cs.State.Running.StartedAt.Time
		} else if cs.State.Terminated != nil {
			cv.running, cv.startedAt = true, cs.State.Terminated.StartedAt.Time
		} else if cs.State.Waiting != nil {
			cv.waiting = cs.State.Waiting.Reason
		}
		pv.containers = append(pv.containers, cv)
	}
	v.pod = pv
	v.converged = pv.ready || pv.terminal
	v.convergedAt = pv.readyAt
	return v
}

// viewUnstructured applies the generic rule of the design to any custom
// resource: observedGeneration caught up and a Ready or Available condition
// True. Without such status the tracker falls back to a quiet period.
func viewUnstructured(u *unstructured.Unstructured, allow map[string]bool) (objectView, bool) {
	m := metav1.ObjectMeta{
		Namespace:         u.GetNamespace(),
		Name:              u.GetName(),
		UID:               u.GetUID(),
		Generation:        u.GetGeneration(),
		ResourceVersion:   u.GetResourceVersion(),
		CreationTimestamp: u.GetCreationTimestamp(),
		DeletionTimestamp: u.GetDeletionTimestamp(),
		OwnerReferences:   u.GetOwnerReferences(),
		Annotations:       u.GetAnnotations(),
		ManagedFields:     u.GetManagedFields(),
	}
	v := metaView(u.GetKind(), &m, allow)
	observed, found, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	conds, hasConds, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	hasStatus := found || hasConds
	ready := false
	for _, c := range conds {
		cm, ok := c.(map[string]any)
		if !ok {
			continue
		}
		if (cm["type"] == "Ready" || cm["type"] == "Available") && cm["status"] == "True" {
			ready = true
		}
	}
	v.converged = ready && (!found || observed >= u.GetGeneration())
	return v, hasStatus
}

// nodeAgentOf is the node agent that wrote a pod's or node's status last:
// kubelet, or kwok on a simulated node. It runs the pod, and it finishes
// the pod's deletion, whoever asked for it (see the README).
func nodeAgentOf(v *objectView) string {
	if v.nodeAgent != "" {
		return v.nodeAgent
	}
	return "kubelet"
}

// newer says whether t is set and not before than (or than is unset).
func newer(t, than *metav1.Time) bool {
	return t != nil && (than == nil || !t.Before(than))
}
