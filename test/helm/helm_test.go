// Package helm checks deploy/helm/values-*.yaml as a user installs them:
// rendered by helm (helm.sh/helm/v4, pinned in tools/go.mod) with the
// official opentelemetry-collector chart (vendored in testdata), whose
// `helm template` validates the values, merged with the chart's defaults,
// against its values.schema.json. The rendered objects are then checked
// for what a user would check: the image, resources, published ports,
// probes, security contexts, Pod Security of the namespace, and that the
// collector config in the ConfigMap validates with this distribution.
package helm

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

const (
	// chartVersion is the vendored chart's version (testdata/.../README.md),
	// the one deploy/README.md installs.
	chartVersion = "0.170.0"
	imageRepo    = "ghcr.io/kubestitch/otelcol-kubestitch"
	// The container's user and group, as in deploy/base.
	nonRootID = 65532
)

// release is one `helm install` of deploy/README.md (Helm).
type release struct {
	name, namespace, values string
}

var (
	gatewayRelease = release{"kubestitch-gateway", "kubestitch", "values-gateway.yaml"}
	agentRelease   = release{"kubestitch-agent", "kubestitch-node", "values-agent.yaml"}
)

// TestHelmValuesInstall renders both values files with the chart, as the
// releases deploy/README.md installs, and checks the rendered objects.
func TestHelmValuesInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds helm from tools/go.mod; `make test` runs it without -short")
	}
	root := repoRoot(t)
	h := buildHelm(t, root)
	version := distVersion(t, root)
	base := baseContainers(t, root)
	levels := namespaceLevels(t, root)

	gw := h.template(t, root, gatewayRelease)
	agent := h.template(t, root, agentRelease)

	t.Run("gateway", func(t *testing.T) {
		obj, spec := gw.workload(t, "Deployment")
		replicas, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
		assert.EqualValues(t, 1, replicas, "one gateway: a second replica behind one Service splits operations")
		strategy, _, _ := unstructured.NestedString(obj.Object, "spec", "strategy", "type")
		assert.Equal(t, "Recreate", strategy, "never two gateways at once")

		cfg := gw.config(t)
		checkPod(t, spec, cfg, podWant{
			image:     imageRepo + ":" + version,
			resources: base["kubestitch-gateway"],
			ports:     map[string]int32{"otlp": 4317, "otlp-http": 4318, "metrics": 8888, "answers": 8889},
			ipField:   "status.podIP",
		})
		reader := telemetryReader(t, cfg)
		assert.Equal(t, "${env:MY_POD_IP}", reader.host, "the collector's own metrics on the pod's IP")
		assert.EqualValues(t, 8888, reader.port)

		// The Service the agents send to publishes the same ports.
		svc := gw.one(t, "Service")
		svcPorts := map[string]int64{}
		ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		for _, p := range ports {
			m := p.(map[string]any)
			svcPorts[m["name"].(string)] = m["port"].(int64)
		}
		assert.Equal(t, map[string]int64{"otlp": 4317, "otlp-http": 4318, "metrics": 8888, "answers": 8889}, svcPorts, "the gateway's Service")

		checkPodSecurity(t, gw, spec, levels)
	})

	t.Run("agent", func(t *testing.T) {
		_, spec := agent.workload(t, "DaemonSet")
		assert.True(t, spec.HostNetwork, "the node's components export to the agent on 127.0.0.1")
		assert.Equal(t, corev1.DNSClusterFirstWithHostNet, spec.DNSPolicy)
		assert.Equal(t, "kubestitch-node-critical", spec.PriorityClassName,
			"the project's PriorityClass (deploy/base/priorityclass.yaml), not system-node-critical outside kube-system")
		assert.Empty(t, agent.all("Service"), "nothing off the node reaches the agent: no Service")

		cfg := agent.config(t)
		checkPod(t, spec, cfg, podWant{
			image:     imageRepo + ":" + version,
			resources: base["kubestitch-agent"],
			ports:     map[string]int32{"metrics": 18888},
			ipField:   "status.hostIP", // the pod's IP on the host network
		})
		reader := telemetryReader(t, cfg)
		assert.Equal(t, "${env:K8S_NODE_IP}", reader.host, "the collector's own metrics on the node's IP")
		assert.EqualValues(t, 18888, reader.port, "not 8888, which other host-network collectors take")
		grpc, _, _ := unstructured.NestedString(cfg, "receivers", "otlp", "protocols", "grpc", "endpoint")
		assert.Equal(t, "127.0.0.1:4317", grpc, "OTLP on the node's loopback")

		// The gateway's address: no release name in the config; the
		// variable's default is the Service the gateway release renders.
		endpoint, _, _ := unstructured.NestedString(cfg, "exporters", "otlp_grpc", "endpoint")
		assert.Equal(t, "${env:KUBESTITCH_GATEWAY_ENDPOINT}", endpoint)
		svc := gw.one(t, "Service")
		otlpPort := int64(0)
		ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		for _, p := range ports {
			if m := p.(map[string]any); m["name"] == "otlp" {
				otlpPort = m["port"].(int64)
			}
		}
		want := fmt.Sprintf("%s.%s.svc:%d", svc.GetName(), svc.GetNamespace(), otlpPort)
		env := envOf(spec.Containers[0])
		require.Contains(t, env, "KUBESTITCH_GATEWAY_ENDPOINT")
		assert.Equal(t, want, env["KUBESTITCH_GATEWAY_ENDPOINT"].Value,
			"the agent sends to the Service of release %s in %s", gatewayRelease.name, gatewayRelease.namespace)

		checkPodSecurity(t, agent, spec, levels)
	})

	// The values before this test existed gave the probes a host, which
	// the chart's schema rejects: the same shape must fail here.
	t.Run("the old probe shape fails the schema", func(t *testing.T) {
		old := filepath.Join(t.TempDir(), "old-probe.yaml")
		require.NoError(t, os.WriteFile(old, []byte("livenessProbe:\n  httpGet: {host: 127.0.0.1, port: 13133}\n"), 0o644))
		out, err := h.run(t, root, agentRelease, "--values", old)
		require.Error(t, err, "helm template accepted a probe with a host")
		assert.Contains(t, out, "values don't meet the specifications of the schema")
		assert.Contains(t, out, "/livenessProbe/httpGet")
		assert.Contains(t, out, "additional properties 'host' not allowed")
	})

	// deploy/README.md (Helm) tells how to point the agents at a gateway
	// of another release name: its --set must reach the variable.
	t.Run("the documented gateway endpoint override", func(t *testing.T) {
		readme, err := os.ReadFile(filepath.Join(root, "deploy", "README.md"))
		require.NoError(t, err)
		m := regexp.MustCompile(`--set '(extraEnvs\[\d+\]\.value)=\.\.\.'`).FindSubmatch(readme)
		require.NotNil(t, m, "deploy/README.md (Helm) gives the --set for KUBESTITCH_GATEWAY_ENDPOINT")
		const other = "gw-opentelemetry-collector.observability.svc:4317"
		out, err := h.run(t, root, agentRelease, "--set", string(m[1])+"="+other)
		require.NoError(t, err, "%s", out)
		assert.Contains(t, out, "- name: KUBESTITCH_GATEWAY_ENDPOINT\n              value: "+other, "%s sets KUBESTITCH_GATEWAY_ENDPOINT", m[1])
	})

	t.Run("configs validate", func(t *testing.T) {
		bin := filepath.Join(root, "bin", "otelcol-kubestitch")
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s: %v: run `make build` first (`make test` does)", bin, err)
		}
		for _, r := range []struct {
			release
			out rendered
		}{{gatewayRelease, gw}, {agentRelease, agent}} {
			_, spec := r.out.workload(t, "")
			dir := t.TempDir()
			conf := filepath.Join(dir, "relay.yaml")
			require.NoError(t, os.WriteFile(conf, []byte(r.out.relay(t)), 0o644))
			// The pod's environment only, its fieldRefs given local values;
			// the state directory is a volume in the pod.
			cmd := exec.Command(bin, "validate", "--config="+conf, "--config=yaml:extensions::file_storage::directory: "+t.TempDir())
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
			for name, e := range envOf(spec.Containers[0]) {
				cmd.Env = append(cmd.Env, name+"="+localValue(e))
			}
			out, err := cmd.CombinedOutput()
			assert.NoError(t, err, "%s: otelcol-kubestitch validate: %s", r.name, out)
		}
	})
}

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
	var served []int32
	for _, l := range listeners(t, cfg) {
		switch {
		case l.component == "health_check":
			health = l
		case !l.loopback():
			served = append(served, l.port)
		}
	}
	slices.Sort(published)
	slices.Sort(served)
	assert.Equal(t, served, published, "the ports published are the ports the config serves off loopback (health_check aside: the probes')")

	// Probes: no host (the chart has none), at health_check's port, which
	// listens on the pod's IP where the kubelet probes.
	require.NotZero(t, health.port, "health_check has an endpoint")
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if assert.NotNil(t, p, "%s probe", name) && assert.NotNil(t, p.HTTPGet, "%s probe: httpGet", name) {
			assert.Empty(t, p.HTTPGet.Host, "%s probe: no host, the pod's IP", name)
			assert.Equal(t, health.port, p.HTTPGet.Port.IntVal, "%s probe: health_check's port", name)
		}
	}
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

// helm is the helm binary built from tools/go.mod, with its own homes.
type helm struct {
	bin string
	env []string
}

func buildHelm(t *testing.T, root string) helm {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "helm")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, "helm.sh/helm/v4/cmd/helm")
	cmd.Dir = filepath.Join(root, "tools")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building helm (tools/go.mod): %s", out)
	mod, err := exec.Command("go", "version", "-m", bin).Output()
	require.NoError(t, err)
	helmMod := regexp.MustCompile(`(?m)^\s+mod\s+helm\.sh/helm/v4\s+(\S+)`).FindSubmatch(mod)
	require.NotNil(t, helmMod, "the binary is helm.sh/helm/v4: %s", mod)
	t.Logf("helm %s built in %s", helmMod[1], time.Since(start).Round(time.Millisecond))
	return helm{bin: bin, env: append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HELM_DATA_HOME="+filepath.Join(dir, "data"))}
}

// run is `helm template` of a release with the vendored chart and its
// values file from deploy/helm, then extra arguments (more values, --set);
// stdout, or stderr on failure.
func (h helm) run(t *testing.T, root string, r release, extra ...string) (string, error) {
	t.Helper()
	args := []string{"template", r.name, filepath.Join("testdata", "opentelemetry-collector"),
		"--namespace", r.namespace, "--values", filepath.Join(root, "deploy", "helm", r.values)}
	args = append(args, extra...)
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stderr.String(), fmt.Errorf("helm %s: %w", strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

// rendered is what `helm template` made of a release.
type rendered struct {
	release release
	objs    []*unstructured.Unstructured
}

func (h helm) template(t *testing.T, root string, r release) rendered {
	t.Helper()
	out, err := h.run(t, root, r)
	require.NoError(t, err, "%s", out)
	res := rendered{release: r}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		j, err := yaml.YAMLToJSON(doc)
		require.NoError(t, err)
		if s := strings.TrimSpace(string(j)); s == "null" || s == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		require.NoError(t, u.UnmarshalJSON(j), "%s", doc)
		assert.Equal(t, "opentelemetry-collector-"+chartVersion, u.GetLabels()["helm.sh/chart"], "%s %s: the vendored chart", u.GetKind(), u.GetName())
		res.objs = append(res.objs, u)
	}
	require.NotEmpty(t, res.objs, "%s renders objects", r.name)
	return res
}

func (r rendered) all(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r rendered) one(t *testing.T, kind string) *unstructured.Unstructured {
	t.Helper()
	objs := r.all(kind)
	require.Len(t, objs, 1, "%s renders one %s", r.release.name, kind)
	assert.Equal(t, r.release.namespace, objs[0].GetNamespace(), "%s %s", kind, objs[0].GetName())
	return objs[0]
}

// workload is the release's one Deployment or DaemonSet (kind, or either
// when empty) and its pod spec.
func (r rendered) workload(t *testing.T, kind string) (*unstructured.Unstructured, corev1.PodSpec) {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, k := range []string{"Deployment", "DaemonSet", "StatefulSet"} {
		if kind == "" || kind == k {
			objs = append(objs, r.all(k)...)
		}
	}
	require.Len(t, objs, 1, "%s renders one workload", r.release.name)
	_, spec := podTemplate(t, objs[0])
	return objs[0], spec
}

// relay is the collector config the chart renders into the ConfigMap.
func (r rendered) relay(t *testing.T) string {
	t.Helper()
	cm := r.one(t, "ConfigMap")
	relay, ok, _ := unstructured.NestedString(cm.Object, "data", "relay")
	require.True(t, ok, "ConfigMap %s has the relay config", cm.GetName())
	return relay
}

func (r rendered) config(t *testing.T) map[string]any {
	t.Helper()
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(r.relay(t)), &cfg))
	return cfg
}

func podTemplate(t *testing.T, obj *unstructured.Unstructured) (metav1.ObjectMeta, corev1.PodSpec) {
	t.Helper()
	tmpl, ok, _ := unstructured.NestedMap(obj.Object, "spec", "template")
	require.True(t, ok, "%s %s has a pod template", obj.GetKind(), obj.GetName())
	var pt corev1.PodTemplateSpec
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, &pt))
	return pt.ObjectMeta, pt.Spec
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

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func ptr[T any](v T) *T { return &v }

// repoRoot is the directory of the repository's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/kubestitch/kubestitch\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no repository root above the working directory")
		dir = parent
	}
}

// distVersion is builder-config.yaml's dist.version: the version of the
// distribution and of its image.
func distVersion(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "builder-config.yaml"))
	require.NoError(t, err)
	var cfg struct {
		Dist struct {
			Version string `json:"version"`
		} `json:"dist"`
	}
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	require.NotEmpty(t, cfg.Dist.Version, "builder-config.yaml has dist.version")
	return cfg.Dist.Version
}

// readObjects reads a multi-document YAML file of Kubernetes objects.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []*unstructured.Unstructured
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		j, err := yaml.YAMLToJSON(doc)
		require.NoError(t, err)
		if s := strings.TrimSpace(string(j)); s == "null" || s == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		require.NoError(t, u.UnmarshalJSON(j), "%s: %s", path, doc)
		out = append(out, u)
	}
}

// baseContainers are the resources of deploy/base/workloads.yaml's
// collector containers, by workload name: the helm values set the same.
func baseContainers(t *testing.T, root string) map[string]corev1.ResourceRequirements {
	t.Helper()
	out := map[string]corev1.ResourceRequirements{}
	for _, obj := range readObjects(t, filepath.Join(root, "deploy", "base", "workloads.yaml")) {
		if _, ok, _ := unstructured.NestedMap(obj.Object, "spec", "template"); !ok {
			continue
		}
		_, spec := podTemplate(t, obj)
		require.Len(t, spec.Containers, 1, "%s", obj.GetName())
		out[obj.GetName()] = spec.Containers[0].Resources
	}
	require.Contains(t, out, "kubestitch-gateway")
	require.Contains(t, out, "kubestitch-agent")
	return out
}

// namespaceLevels are the Pod Security levels deploy/base/namespace.yaml
// enforces, by namespace.
func namespaceLevels(t *testing.T, root string) map[string]psapi.LevelVersion {
	t.Helper()
	out := map[string]psapi.LevelVersion{}
	for _, obj := range readObjects(t, filepath.Join(root, "deploy", "base", "namespace.yaml")) {
		if obj.GetKind() != "Namespace" {
			continue
		}
		labels := obj.GetLabels()
		level, err := psapi.ParseLevel(labels[psapi.EnforceLevelLabel])
		require.NoError(t, err, "namespace %s enforces a Pod Security level", obj.GetName())
		version := psapi.LatestVersion()
		if v, ok := labels[psapi.EnforceVersionLabel]; ok {
			version, err = psapi.ParseVersion(v)
			require.NoError(t, err)
		}
		out[obj.GetName()] = psapi.LevelVersion{Level: level, Version: version}
	}
	return out
}
