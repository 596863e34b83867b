package helm

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// The assertions on a release's pods: what each one runs, mounts, listens
// on and reads from its environment.

// podWant is what a release's pod must look like.
type podWant struct {
	image     string
	resources corev1.ResourceRequirements
	ports     map[string]int32 // name -> containerPort, all of them
	ipField   string           // the fieldRef of the pod's IP the listeners bind to
}

func checkPod(t *testing.T, spec corev1.PodSpec, cfg map[string]any, want podWant) {
	t.Helper()
	require.Len(t, spec.Containers, 1)
	c := spec.Containers[0]
	env := envOf(c)

	assert.Equal(t, want.image, c.Image, "the image is builder-config.yaml's dist.version")
	assert.Equal(t, []string{"/otelcol-kubestitch"}, c.Command, "the image's binary")

	// Resources as deploy/base, a memory limit, and GOMEMLIMIT under it.
	assert.Equal(t, quantities(want.resources.Requests), quantities(c.Resources.Requests), "resources.requests as deploy/base/workloads.yaml")
	assert.Equal(t, quantities(want.resources.Limits), quantities(c.Resources.Limits), "resources.limits as deploy/base/workloads.yaml")
	limit := c.Resources.Limits.Memory()
	if assert.False(t, limit.IsZero(), "a memory limit") {
		require.Contains(t, env, "GOMEMLIMIT", "useGOMEMLIMIT with a memory limit")
		assert.Equal(t, fmt.Sprintf("%dMiB", limit.Value()*8/10>>20), env["GOMEMLIMIT"].Value, "GOMEMLIMIT: 80 %% of the limit")
	}

	// Published: exactly the ports named, none on the host, no
	// jaeger/zipkin, and they are what the config serves off loopback.
	got := map[string]int32{}
	var published []int32
	for _, p := range c.Ports {
		got[p.Name] = p.ContainerPort
		published = append(published, p.ContainerPort)
		assert.Zero(t, p.HostPort, "port %s: no hostPort", p.Name)
		assert.Equal(t, corev1.ProtocolTCP, p.Protocol, "port %s", p.Name)
		assert.NotRegexp(t, `jaeger|zipkin`, p.Name, "nothing listens for jaeger or zipkin")
	}
	assert.Equal(t, want.ports, got, "the container ports")
	health := listener{}
	healthPorts := map[int32]bool{}
	var served []int32
	for _, l := range listeners(t, cfg) {
		switch {
		case l.component == "health_check":
			health = l
			healthPorts[l.port] = true
		case strings.HasPrefix(l.component, "health_check/"):
			healthPorts[l.port] = true
		case !l.loopback():
			served = append(served, l.port)
		}
	}
	slices.Sort(published)
	slices.Sort(served)
	assert.Equal(t, served, published, "the ports published are the ports the config serves off loopback (health_check aside: the probes')")

	// Probes: no host (the chart has none), at a health_check's port,
	// which listens on the pod's IP where the kubelet probes; readiness at
	// health_check's own (the agent's reads the components' status; its
	// liveness probe has a health_check/live of its own).
	require.NotZero(t, health.port, "health_check has an endpoint")
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if assert.NotNil(t, p, "%s probe", name) && assert.NotNil(t, p.HTTPGet, "%s probe: httpGet", name) {
			assert.Empty(t, p.HTTPGet.Host, "%s probe: no host, the pod's IP", name)
			assert.True(t, healthPorts[p.HTTPGet.Port.IntVal], "%s probe: a health_check's port", name)
		}
	}
	assert.Equal(t, health.port, c.ReadinessProbe.HTTPGet.Port.IntVal, "readiness probe: health_check's port")
	assert.Equal(t, want.ipField, fieldRefOf(t, env, health.host), "health_check listens on the pod's IP")
	for _, l := range listeners(t, cfg) {
		if !l.loopback() && l.host != "0.0.0.0" {
			assert.Equal(t, want.ipField, fieldRefOf(t, env, l.host), "%s listens on the pod's IP", l.component)
		}
	}

	// Every variable the config reads without a default is set in the pod.
	for _, m := range envRef.FindAllStringSubmatch(mustYAML(t, cfg), -1) {
		if !strings.Contains(m[1], ":-") {
			assert.Contains(t, env, m[1], "the config reads ${env:%s}: the container sets it", m[1])
		}
	}

	// Security contexts: as deploy/base.
	psc := spec.SecurityContext
	require.NotNil(t, psc, "podSecurityContext")
	assert.Equal(t, ptr(true), psc.RunAsNonRoot)
	assert.Equal(t, ptr(int64(nonRootID)), psc.RunAsUser)
	assert.Equal(t, ptr(int64(nonRootID)), psc.RunAsGroup)
	assert.Equal(t, ptr(int64(nonRootID)), psc.FSGroup)
	if assert.NotNil(t, psc.SeccompProfile) {
		assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)
	}
	sc := c.SecurityContext
	require.NotNil(t, sc, "securityContext")
	assert.Equal(t, ptr(true), sc.ReadOnlyRootFilesystem)
	assert.Equal(t, ptr(false), sc.AllowPrivilegeEscalation)
	if assert.NotNil(t, sc.Capabilities) {
		assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
		assert.Empty(t, sc.Capabilities.Add)
	}

	// The fragment key: the Secret deploy/fragment-key.sh makes, where
	// the config reads it.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	found := false
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "kubestitch-fragment-key" {
			found = true
			require.Contains(t, mounts, v.Name)
			for _, path := range fragmentKeyFiles(cfg) {
				assert.True(t, strings.HasPrefix(path, mounts[v.Name]+"/"), "fragment_key_file %s is in the Secret's mount %s", path, mounts[v.Name])
			}
		}
	}
	assert.True(t, found, "the Secret kubestitch-fragment-key is a volume")
	assert.NotEmpty(t, fragmentKeyFiles(cfg), "fragments are signed or verified")
}

// checkPodSecurity judges the pod template by the Pod Security level its
// namespace enforces (deploy/base/namespace.yaml, which deploy/README.md
// has the helm install apply), with kube-apiserver's own library, as
// test/deploy does for the overlays. Outside restricted, restricted but
// for the host network must hold.
func checkPodSecurity(t *testing.T, r rendered, spec corev1.PodSpec, levels map[string]psapi.LevelVersion) {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	require.NoError(t, err)
	obj, _ := r.workload(t, "")
	meta, _ := podTemplate(t, obj)
	lv, ok := levels[r.release.namespace]
	require.True(t, ok, "namespace %s is in deploy/base/namespace.yaml", r.release.namespace)
	res := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, &meta, &spec))
	assert.True(t, res.Allowed, "%s violates Pod Security %s of %s: %s", obj.GetName(), lv.String(), r.release.namespace, res.ForbiddenDetail())
	if lv.Level == psapi.LevelRestricted {
		return
	}
	assert.True(t, spec.HostNetwork, "only the host network is a reason to run outside restricted")
	spec = *spec.DeepCopy()
	spec.HostNetwork = false
	res = policy.AggregateCheckResults(evaluator.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &meta, &spec))
	assert.True(t, res.Allowed, "%s: restricted but for the host network: %s", obj.GetName(), res.ForbiddenDetail())
}

// listener is an address the collector config serves on.
type listener struct {
	component, host string
	port            int32
}

func (l listener) loopback() bool {
	return l.host == "127.0.0.1" || l.host == "localhost" || l.host == "::1"
}

// listeners are the config's server endpoints: OTLP receivers, prometheus
// exporters, the health_check and pprof extensions, and the collector's
// own metrics readers.
func listeners(t *testing.T, cfg map[string]any) []listener {
	t.Helper()
	var out []listener
	add := func(component, endpoint string) {
		i := strings.LastIndex(endpoint, ":")
		require.Positive(t, i, "%s endpoint %q is host:port", component, endpoint)
		port, err := strconv.ParseInt(endpoint[i+1:], 10, 32)
		require.NoError(t, err, "%s endpoint %q", component, endpoint)
		out = append(out, listener{component, endpoint[:i], int32(port)})
	}
	named := func(section, typ string) map[string]map[string]any {
		m := map[string]map[string]any{}
		s, _ := cfg[section].(map[string]any)
		for id, c := range s {
			if id == typ || strings.HasPrefix(id, typ+"/") {
				cm, _ := c.(map[string]any)
				m[id] = cm
			}
		}
		return m
	}
	for id, c := range named("receivers", "otlp") {
		protocols, _ := c["protocols"].(map[string]any)
		for p, pc := range protocols {
			ep, _ := pc.(map[string]any)["endpoint"].(string)
			add(id+" "+p, ep)
		}
	}
	for id, c := range named("exporters", "prometheus") {
		add(id, c["endpoint"].(string))
	}
	for _, typ := range []string{"health_check", "pprof"} {
		for id, c := range named("extensions", typ) {
			add(id, c["endpoint"].(string))
		}
	}
	readers, _, _ := unstructured.NestedSlice(cfg, "service", "telemetry", "metrics", "readers")
	for _, r := range readers {
		p, ok, _ := unstructured.NestedMap(r.(map[string]any), "pull", "exporter", "prometheus")
		if ok {
			add("service.telemetry", fmt.Sprintf("%v:%v", p["host"], p["port"]))
		}
	}
	return out
}

// telemetryReader is the config's one pull reader of the collector's own
// metrics.
func telemetryReader(t *testing.T, cfg map[string]any) listener {
	t.Helper()
	var out []listener
	for _, l := range listeners(t, cfg) {
		if l.component == "service.telemetry" {
			out = append(out, l)
		}
	}
	require.Len(t, out, 1, "service.telemetry.metrics.readers: one pull reader")
	return out[0]
}

func fragmentKeyFiles(cfg map[string]any) []string {
	var out []string
	for _, section := range []string{"receivers", "processors"} {
		s, _ := cfg[section].(map[string]any)
		for _, c := range s {
			if cm, ok := c.(map[string]any); ok {
				if f, ok := cm["fragment_key_file"].(string); ok {
					out = append(out, f)
				}
			}
		}
	}
	return out
}

var envRef = regexp.MustCompile(`\$\{env:([^}]+)\}`)

// fieldRefOf is the fieldRef path of the variable a host is, "${env:X}".
func fieldRefOf(t *testing.T, env map[string]corev1.EnvVar, host string) string {
	t.Helper()
	m := envRef.FindStringSubmatch(host)
	if m == nil || m[0] != host {
		return "host " + host
	}
	e, ok := env[m[1]]
	if !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil {
		return "variable " + m[1] + " without a fieldRef"
	}
	return e.ValueFrom.FieldRef.FieldPath
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

// localValue is what a variable of the pod is when its config is
// validated here: its value, or for a fieldRef a local stand-in.
func localValue(e corev1.EnvVar) string {
	if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil {
		return e.Value
	}
	switch e.ValueFrom.FieldRef.FieldPath {
	case "status.podIP", "status.hostIP":
		return "127.0.0.1"
	case "spec.nodeName":
		return "node-0"
	default:
		return "x"
	}
}

func quantities(l corev1.ResourceList) map[corev1.ResourceName]string {
	out := map[corev1.ResourceName]string{}
	for k, v := range l {
		out[k] = v.String()
	}
	return out
}

func ptr[T any](v T) *T { return &v }
