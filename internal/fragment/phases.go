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

// The pod-startup transitions of clusterloader2's PodStartupLatency
// measurement, as span names of LevelSLI spans. PodStartup is the SIG
// Scalability SLI: creation to running as observed by a watch, minus
// image pulls and init containers.
const (
	SLICreateToSchedule = "create_to_schedule"
	SLIScheduleToRun    = "schedule_to_run"
	SLIRunToWatch       = "run_to_watch"
	SLIScheduleToWatch  = "schedule_to_watch"
	SLIPodStartup       = "pod_startup"
)

// SLITransitions lists them in the order of a pod start.
var SLITransitions = []string{SLICreateToSchedule, SLIScheduleToRun, SLIRunToWatch, SLIScheduleToWatch, SLIPodStartup}

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

// Blocked is the name of a blocked-step span (LevelBlocked): the step a
// Warning blocks, suffixed, so that it never counts as the step itself
// (a pod with a FailedScheduling still has one pod.schedule).
func Blocked(step string) string { return step + ".blocked" }
