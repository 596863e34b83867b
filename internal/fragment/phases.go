package fragment

// Phase names: low cardinality, object names go in attributes.
const (
	PhaseTrigger = "object.trigger"
	PhaseDelete  = "object.delete"
	// PhaseReconcile is the object span of any kind without a rule of its own.
	PhaseReconcile = "object.reconcile"

	PhaseDeploymentRollout  = "deployment.rollout"
	PhaseReplicaSetScale    = "replicaset.scale"
	PhaseStatefulSetRollout = "statefulset.rollout"
	PhaseDaemonSetRollout   = "daemonset.rollout"
	PhaseJobRun             = "job.run"
	PhaseCronJobSchedule    = "cronjob.schedule"
	PhaseNodeReady          = "node.ready"

	PhasePodStartup     = "pod.startup"
	PhasePodSchedule    = "pod.schedule"
	PhasePodInitialize  = "pod.initialize"
	PhaseImagePull      = "image.pull"
	PhaseContainerStart = "container.start"
	PhasePodReady       = "pod.ready"
	PhasePodTerminate   = "pod.terminate"
)

// ObjectPhase is the name of the object span of kind for a trigger.
func ObjectPhase(kind, trigger string) string {
	if trigger == TriggerDelete {
		return PhaseDelete
	}
	switch kind {
	case "Deployment":
		return PhaseDeploymentRollout
	case "ReplicaSet":
		return PhaseReplicaSetScale
	case "StatefulSet":
		return PhaseStatefulSetRollout
	case "DaemonSet":
		return PhaseDaemonSetRollout
	case "Job":
		return PhaseJobRun
	case "CronJob":
		return PhaseCronJobSchedule
	case "Pod":
		return PhasePodStartup
	case "Node":
		return PhaseNodeReady
	}
	return PhaseReconcile
}
