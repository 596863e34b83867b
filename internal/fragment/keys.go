package fragment

// Semantic-convention keys (https://opentelemetry.io/docs/specs/semconv/resource/k8s/).
const (
	KeyServiceName   = "service.name"
	KeyNamespace     = "k8s.namespace.name"
	KeyNodeName      = "k8s.node.name"
	KeyPodUID        = "k8s.pod.uid"
	KeyPodName       = "k8s.pod.name"
	KeyContainerName = "k8s.container.name"
)

// Keys of our own, for the generic object key that every fragment carries.
const (
	// KeyKind is the object's kind (Pod, ReplicaSet, ...).
	KeyKind = "kubestitch.object.kind"
	// KeyUID is the object's metadata.uid.
	KeyUID = "kubestitch.object.uid"
	// KeyName is the object's metadata.name.
	KeyName = "kubestitch.object.name"
	// KeyGeneration is metadata.generation when the fragment was made.
	KeyGeneration = "kubestitch.object.generation"
	// KeyResourceVersion is metadata.resourceVersion when the fragment was made.
	KeyResourceVersion = "kubestitch.object.resource_version"
	// KeyOwnerKind and KeyOwnerUID name the controller ownerReference.
	KeyOwnerKind = "kubestitch.owner.kind"
	KeyOwnerUID  = "kubestitch.owner.uid"
	// KeyOwnerName is the controller owner's name, for people reading a
	// span; joins use KeyOwnerUID.
	KeyOwnerName = "kubestitch.owner.name"
	// KeyTrigger names the trigger the fragment belongs to: "gen:N" or "delete".
	KeyTrigger = "kubestitch.trigger"
	// KeyTriggerTime is the trigger's time in Unix nanoseconds.
	KeyTriggerTime = "kubestitch.trigger.time_unix_nano"
	// KeyLevel says what the fragment is: LevelObject for the one span per
	// object and trigger, LevelStep for a phase under it, LevelTrigger for the
	// marker emitted when the trigger is first seen.
	KeyLevel = "kubestitch.fragment.level"
	// KeyTimeSource says where the span's times came from (TimeSource*).
	KeyTimeSource = "kubestitch.time.source"
	// KeyConverged is true on an object span that ended because the object
	// converged, false when it ended otherwise (timeout, deletion).
	KeyConverged = "kubestitch.converged"
	// KeyTraceparent carries a trace context found on the object (annotation
	// tracing.k8s.io/traceparent or trace.kubernetes.io/context).
	KeyTraceparent = "kubestitch.traceparent"
	// KeyReason is a short machine-readable reason (event reason, timeout ...).
	KeyReason = "kubestitch.reason"
	// KeyResumed is true on an object span a watcher sent for an operation
	// that converged while no watcher saw it (a new k8swatch Lease holder's
	// first list): it closes that operation where a processor still holds
	// it open, and is dropped everywhere else.
	KeyResumed = "kubestitch.fragment.resumed"
	// KeyReannounced is true on a span a watcher sends again so that a
	// processor that never saw the operation can place the rest of it (the
	// namespace's new owner after a gateway's death): the trigger of an open
	// operation, the trigger and object span of one that just ended
	// (k8swatch's reannounce_interval). A processor learns from it and never
	// sends it on.
	KeyReannounced = "kubestitch.fragment.reannounced"
)

// Keys the processor writes when it rewrites an app span.
const (
	KeyOriginalTraceID = "kubestitch.original.trace_id"
	// KeyJoinBy, on the root of a joined app trace, says what placed it:
	// JoinByUID (an object UID carried by a span of the trace: admission,
	// kubelet, workload), JoinByPath (an apiserver request path and time)
	// or JoinByCreateKey (the etcd key a create stored).
	KeyJoinBy = "kubestitch.join.by"
)

// Ways an app trace is joined (KeyJoinBy values).
const (
	JoinByUID       = "uid"
	JoinByPath      = "path"
	JoinByCreateKey = "create_key"
)

// Keys of the k8sadmission receiver's span: what one admission review says
// of a write request, besides the object keys (KeyUID, KeyKind, KeyName,
// KeyNamespace, KeyOwnerKind, KeyOwnerUID).
const (
	// KeyAdmissionOperation is CREATE, UPDATE, DELETE or CONNECT.
	KeyAdmissionOperation   = "kubestitch.admission.operation"
	KeyAdmissionGroup       = "kubestitch.admission.group"
	KeyAdmissionVersion     = "kubestitch.admission.version"
	KeyAdmissionResource    = "kubestitch.admission.resource"
	KeyAdmissionSubresource = "kubestitch.admission.subresource"
	KeyAdmissionDryRun      = "kubestitch.admission.dry_run"
	// KeyAdmissionUser is the requesting user's name, never their groups,
	// extra or credentials.
	KeyAdmissionUser = "kubestitch.admission.user"
	// KeyAdmissionRequestUID is the AdmissionReview request's UID.
	KeyAdmissionRequestUID = "kubestitch.admission.request_uid"
)

// Fragment levels.
const (
	LevelObject  = "object"
	LevelStep    = "step"
	LevelTrigger = "trigger"
	// LevelSLI: a pod-startup transition measured the clusterloader2 way
	// (sli.go in k8swatch); its duration is the figure, for spanmetrics.
	LevelSLI = "sli"
	// LevelBlocked: a Warning that blocks a step, sent at once (the
	// k8sstitch README, "Stuck operations").
	LevelBlocked = "blocked"
)

// Attributes of SLI and blocked-step spans.
const (
	// KeyEventReason and KeyEventMessage are a Kubernetes Event's reason
	// and message (the message only as event_messages allows).
	KeyEventReason  = "k8s.event.reason"
	KeyEventMessage = "k8s.event.message"
	// KeyEventCount is how many Warnings of that reason the step saw
	// before its span was sent.
	KeyEventCount = "k8s.event.count"
	// KeyCause is the first Warning that blocked an operation, on its
	// object span: "Reason: message".
	KeyCause = "kubestitch.cause"
	// KeySLIExcluded is what pod_startup leaves out of create-to-watch
	// (image pulls, init containers), in nanoseconds.
	KeySLIExcluded = "kubestitch.sli.excluded_ns"
	// KeySLIScheduleSource says where the schedule phase came from: the
	// scheduler's Scheduled Event ("event", microseconds, as
	// clusterloader2), else the watch's delivery of the pod bound
	// ("watch"), else the PodScheduled condition ("condition", whole
	// seconds).
	KeySLIScheduleSource = "kubestitch.sli.schedule_source"
	// KeySLICreateSource says where the create phase came from: the
	// watch's delivery of the new pod ("watch"), else, for a pod created
	// out of the watcher's sight, its creationTimestamp
	// ("creation_timestamp", whole seconds).
	KeySLICreateSource = "kubestitch.sli.create_source"
	// KeySLISecondPrecision is true on an SLI span with a boundary from a
	// field the API keeps to the second: it may be off by up to a second.
	KeySLISecondPrecision = "kubestitch.sli.second_precision"
)

// Time sources, from least to most precise.
const (
	// TimeSourceObject: the object's own metav1.Time fields (seconds).
	TimeSourceObject = "object"
	// TimeSourceEvent: an events.k8s.io eventTime (microseconds).
	TimeSourceEvent = "event"
	// TimeSourceWatch: the moment the watch event arrived (nanoseconds).
	TimeSourceWatch = "watch"
)

// Trace-context annotations honoured on objects.
const (
	AnnotationTraceparent       = "tracing.k8s.io/traceparent"
	AnnotationLegacyTraceparent = "trace.kubernetes.io/context"
)

// ScopeName is the instrumentation scope of all fragments.
const ScopeName = "github.com/kubestitch/kubestitch/receiver/k8swatchreceiver"
