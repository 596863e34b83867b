package deploy

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/otlpsink"
	"github.com/kubestitch/kubestitch/test/promtext"
)

// monitoringExample builds test/deploy/testdata/monitoring: the
// monitoring component used as its README says, over the sharded overlay.
func monitoringExample(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	return buildDir(t, filepath.Join(repoRoot(t), "test", "deploy", "testdata", "monitoring"))
}

// podSpec is a workload's pod spec.
func podSpec(t *testing.T, obj *unstructured.Unstructured) corev1.PodSpec {
	t.Helper()
	_, spec, ok := podTemplate(t, obj)
	require.True(t, ok, "%s %s has a pod template", obj.GetKind(), obj.GetName())
	return spec
}

// mergedConfig is the collector config a workload's pod runs: its --config
// files merged in the order of its args.
func mergedConfig(t *testing.T, objs []*unstructured.Unstructured, obj *unstructured.Unstructured) map[string]any {
	t.Helper()
	merged := map[string]any{}
	for _, f := range podConfigs(t, objs, obj) {
		var part map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(f.body), &part))
		merge(merged, part)
	}
	return merged
}

// telemetryReader is the one Prometheus pull reader of a config's own
// telemetry: the map in cfg itself, to be changed in place.
func telemetryReader(t *testing.T, cfg map[string]any) map[string]any {
	t.Helper()
	var cur any = cfg
	for _, k := range []string{"service", "telemetry", "metrics", "readers"} {
		m, ok := cur.(map[string]any)
		require.True(t, ok, "service.telemetry.metrics.readers: %s of %v", k, cur)
		cur = m[k]
	}
	readers, _ := cur.([]any)
	require.Len(t, readers, 1, "one reader for the collector's own metrics")
	cur = readers[0]
	for _, k := range []string{"pull", "exporter", "prometheus"} {
		m, ok := cur.(map[string]any)
		require.True(t, ok, "a Prometheus pull reader: %s of %v", k, readers[0])
		cur = m[k]
	}
	prom, ok := cur.(map[string]any)
	require.True(t, ok, "a Prometheus pull reader: %v", readers[0])
	return prom
}

// TestTelemetryServedOnMetricsPort: in every overlay, each collector pod's
// own metrics are served where a scraper reaches them and where the pod
// spec says: the config's Prometheus reader listens on the port the
// container declares as `metrics`, on the pod's IP (status.podIP) or, on
// the host network, the node's (status.hostIP), never on 8888 of a node;
// and names its metrics as documentation.md does (no suffixes), which the
// PrometheusRule's expressions rely on.
func TestTelemetryServedOnMetricsPort(t *testing.T) {
	for _, o := range append(slices.Clone(overlays), "monitoring example") {
		var objs []*unstructured.Unstructured
		if o == "monitoring example" {
			objs = monitoringExample(t)
		} else {
			objs = build(t, o)
		}
		workloads := 0
		for _, obj := range objs {
			if obj.GetKind() != "Deployment" && obj.GetKind() != "DaemonSet" {
				continue
			}
			workloads++
			spec := podSpec(t, obj)
			c := spec.Containers[0]
			declared := map[string]int32{}
			for _, p := range c.Ports {
				declared[p.Name] = p.ContainerPort
			}
			prom := telemetryReader(t, mergedConfig(t, objs, obj))
			port, _ := prom["port"].(float64)
			assert.Equal(t, float64(declared["metrics"]), port, "%s: %s serves its metrics on its container port `metrics`", o, obj.GetName())
			for _, flag := range []string{"without_scope_info", "without_type_suffix", "without_units"} {
				assert.Equal(t, true, prom[flag], "%s: %s: %s, so that the names are documentation.md's", o, obj.GetName(), flag)
			}
			host, _ := prom["host"].(string)
			env, ok := strings.CutPrefix(host, "${env:")
			require.True(t, ok, "%s: %s: the reader's host comes from the pod's env: %q", o, obj.GetName(), host)
			env = strings.TrimSuffix(env, "}")
			field := ""
			for _, e := range c.Env {
				if e.Name == env && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
					field = e.ValueFrom.FieldRef.FieldPath
				}
			}
			if spec.HostNetwork {
				assert.Equal(t, "status.hostIP", field, "%s: %s: %s is the node's IP", o, obj.GetName(), env)
				assert.NotEqual(t, float64(8888), port, "%s: %s: 8888 on the node is other host-network collectors' default", o, obj.GetName())
				assert.Equal(t, float64(agentMetricsPort), port, "%s: %s: where podMetrics reads it", o, obj.GetName())
			} else {
				assert.Equal(t, "status.podIP", field, "%s: %s: %s is the pod's IP", o, obj.GetName(), env)
				assert.Equal(t, float64(gatewayMetricsPort), port, "%s: %s: where podMetrics reads it", o, obj.GetName())
			}
		}
		assert.GreaterOrEqual(t, workloads, 2, "%s: an agent and a gateway", o)
	}
}

// TestMonitoringScrapesEveryCollector: the monitoring component's
// PodMonitors select the agent's and the gateway's pods in their own
// namespaces and scrape ports those pods declare: `metrics` on both,
// the span metrics (`answers`) on the gateway; the PrometheusRule ships
// beside them; and no overlay ships them unasked (they need the Prometheus
// Operator's CRDs).
func TestMonitoringScrapesEveryCollector(t *testing.T) {
	objs := monitoringExample(t)
	scraped := map[string][]string{} // by workload
	rules := 0
	for _, pm := range objs {
		switch pm.GetKind() {
		case "PrometheusRule":
			rules++
			assert.Equal(t, "monitoring.coreos.com/v1", pm.GetAPIVersion())
			assert.Equal(t, "kubestitch", pm.GetNamespace())
			continue
		case "PodMonitor":
		default:
			continue
		}
		assert.Equal(t, "monitoring.coreos.com/v1", pm.GetAPIVersion())
		sel, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
		require.NotEmpty(t, sel, "%s selects by labels", pm.GetName())
		targetLabels, _, _ := unstructured.NestedStringSlice(pm.Object, "spec", "podTargetLabels")
		assert.Contains(t, targetLabels, "app.kubernetes.io/name", "%s: the rules select by app_kubernetes_io_name", pm.GetName())
		endpoints, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
		require.NotEmpty(t, endpoints, pm.GetName())
		matched := 0
		for _, obj := range objs {
			if obj.GetKind() != "Deployment" && obj.GetKind() != "DaemonSet" {
				continue
			}
			meta, spec, _ := podTemplate(t, obj)
			matches := true
			for k, v := range sel {
				matches = matches && meta.Labels[k] == v
			}
			if !matches {
				continue
			}
			matched++
			assert.Equal(t, obj.GetNamespace(), pm.GetNamespace(), "%s sits in the namespace of the pods it selects", pm.GetName())
			for _, e := range endpoints {
				port, _ := e.(map[string]any)["port"].(string)
				assert.True(t, slices.ContainsFunc(spec.Containers[0].Ports, func(p corev1.ContainerPort) bool { return p.Name == port }),
					"%s scrapes port %q, which %s declares", pm.GetName(), port, obj.GetName())
				scraped[obj.GetName()] = append(scraped[obj.GetName()], port)
			}
		}
		assert.Equal(t, 1, matched, "%s selects one workload's pods", pm.GetName())
	}
	assert.Equal(t, 1, rules, "one PrometheusRule")
	assert.ElementsMatch(t, []string{"metrics", "answers"}, scraped["kubestitch-gateway"], "the gateway's own metrics and its span metrics")
	assert.ElementsMatch(t, []string{"metrics"}, scraped["kubestitch-agent"], "the agent's own metrics")

	for _, o := range overlays {
		for _, obj := range build(t, o) {
			assert.NotEqual(t, "monitoring.coreos.com", obj.GroupVersionKind().Group, "%s ships %s %s: it needs the Prometheus Operator", o, obj.GetKind(), obj.GetName())
		}
	}
}

// collectorModules hold the collector's own telemetry in the binary
// (documentation.md of each, generated by mdatagen like ours): the
// exporters', receivers' and processors' standard metrics, the process's,
// the batch and memory_limiter processors' and the load-balancing
// exporter's.
var collectorModules = []string{
	"go.opentelemetry.io/collector/exporter/exporterhelper",
	"go.opentelemetry.io/collector/receiver/receiverhelper",
	"go.opentelemetry.io/collector/processor/processorhelper",
	"go.opentelemetry.io/collector/processor/batchprocessor",
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor",
	"go.opentelemetry.io/collector/service",
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/loadbalancingexporter",
}

// documentedMetrics are the names of every metric a collector of the
// install can serve, from the documentation.md of this repository's
// components and of the collector modules the binary is built from (the
// versions go.mod pins).
func documentedMetrics(t *testing.T) map[string]string {
	t.Helper()
	root := repoRoot(t)
	var files []string
	for _, pattern := range []string{"receiver/*/documentation.md", "processor/*/documentation.md"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.GreaterOrEqual(t, len(files), 4, "k8s_watch, k8s_admission, k8s_stitch, k8s_namespace")
	cmd := exec.Command("go", append([]string{"list", "-m", "-f", "{{.Path}} {{.Dir}}"}, collectorModules...)...)
	cmd.Dir = root
	out, err := cmd.Output()
	require.NoError(t, err, "go list -m: %s", out)
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, dir, _ := strings.Cut(l, " ")
		require.NotEmpty(t, dir, "%s is in the module cache (go mod download)", path)
		files = append(files, filepath.Join(dir, "documentation.md"))
	}
	names := map[string]string{} // name -> file
	for _, f := range files {
		n := 0
		for _, name := range telemetrySection(t, f) {
			names[name] = f
			n++
		}
		assert.Positive(t, n, "%s documents its telemetry", f)
	}
	return names
}

// telemetrySection is the metric names (### headings) of a documentation.md's
// "Internal Telemetry" section.
func telemetrySection(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	var out []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "## ") {
			in = strings.TrimSpace(l) == "## Internal Telemetry"
		}
		if name, ok := strings.CutPrefix(l, "### "); ok && in {
			out = append(out, strings.TrimSpace(name))
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// exprSelectors are the metric names an expression selects, each with the
// matchers it selects by.
func exprSelectors(expr string) (map[string][]*labels.Matcher, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	out := map[string][]*labels.Matcher{}
	for _, ms := range parser.ExtractSelectors(e) {
		name := ""
		for _, m := range ms {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		out[name] = ms
	}
	return out, nil
}

// undocumented are the metric names of expr that no documentation.md has.
func undocumented(t *testing.T, documented map[string]string, expr string) []string {
	t.Helper()
	sels, err := exprSelectors(expr)
	require.NoError(t, err, "PromQL: %s", expr)
	var out []string
	for name := range sels {
		if _, ok := documented[name]; !ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// TestMonitoringRulesNameRealMetrics: every alert of the PrometheusRule
// parses as PromQL, selects only metrics a collector of the install
// serves, by the names it serves them under (documentation.md's: the
// readers keep the names, TestTelemetryServedOnMetricsPort and
// TestGatewayTelemetryNamedAsDocumented hold them to it), only of this
// install's pods, and says how bad it is and what to do. Together they
// cover what an operator must be paged for.
func TestMonitoringRulesNameRealMetrics(t *testing.T) {
	documented := documentedMetrics(t)
	// The check itself: the Prometheus convention's counter name, which
	// these readers do not write, is caught.
	assert.Equal(t, []string{"otelcol_k8sstitch_fragments_unverified_total"},
		undocumented(t, documented, `rate(otelcol_k8sstitch_fragments_unverified_total[5m]) > 0`))
	assert.Empty(t, undocumented(t, documented, `rate(otelcol_exporter_send_failed_spans[5m]) > 0`))

	var rule *unstructured.Unstructured
	for _, obj := range monitoringExample(t) {
		if obj.GetKind() == "PrometheusRule" {
			rule = obj
		}
	}
	require.NotNil(t, rule)
	groups, _, err := unstructured.NestedSlice(rule.Object, "spec", "groups")
	require.NoError(t, err)
	require.NotEmpty(t, groups)
	used := map[string]bool{}
	alerts := map[string]bool{}
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			r := r.(map[string]any)
			alert, _ := r["alert"].(string)
			require.NotEmpty(t, alert, "recording rules are not expected: %v", r)
			assert.False(t, alerts[alert], "alert %s once", alert)
			alerts[alert] = true
			expr, _ := r["expr"].(string)
			assert.Empty(t, undocumented(t, documented, expr), "%s selects metrics no collector of the install serves: %s", alert, expr)
			sels, err := exprSelectors(expr)
			require.NoError(t, err)
			for name, ms := range sels {
				used[name] = true
				assert.True(t, slices.ContainsFunc(ms, func(m *labels.Matcher) bool {
					return m.Name == "app_kubernetes_io_name" && m.Type == labels.MatchEqual && m.Value == "kubestitch"
				}), "%s: %s of this install's pods only (app_kubernetes_io_name=\"kubestitch\")", alert, name)
			}
			if f, ok := r["for"].(string); ok {
				_, err := model.ParseDuration(f)
				assert.NoError(t, err, "%s: for", alert)
			}
			ls, _, _ := unstructured.NestedStringMap(r, "labels")
			assert.Contains(t, []string{"critical", "warning"}, ls["severity"], "%s: severity", alert)
			ann, _, _ := unstructured.NestedStringMap(r, "annotations")
			assert.NotEmpty(t, ann["summary"], "%s: summary", alert)
			assert.NotEmpty(t, ann["description"], "%s: description", alert)
		}
	}
	for _, m := range []string{
		"otelcol_k8sstitch_fragments_unverified",
		"otelcol_k8swatch_watch_errors",
		"otelcol_k8sstitch_objects_shed",
		"otelcol_k8sstitch_spans_shed",
		"otelcol_exporter_send_failed_spans",
		"otelcol_k8sstitch_operations_timed_out",
	} {
		assert.True(t, used[m], "an alert on %s", m)
	}
}

// TestGatewayTelemetryNamedAsDocumented runs the gateway's config as the
// single-gateway overlay ships it (its telemetry reader as shipped, on a
// free port of 127.0.0.1 here; no cluster, so without k8swatch), sends it
// an app span and an unsigned fragment, and reads its /metrics: every
// otelcol_* metric it serves is named exactly as a documentation.md
// names it (the names the PrometheusRule uses), the unverified fragment
// among them.
func TestGatewayTelemetryNamedAsDocumented(t *testing.T) {
	bin := harness.CollectorBinary(t)
	documented := documentedMetrics(t)
	objs := build(t, "single-gateway")
	var gw *unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == "Deployment" && obj.GetName() == "kubestitch-gateway" {
			gw = obj
		}
	}
	require.NotNil(t, gw)
	files := podConfigs(t, objs, gw)
	require.Len(t, files, 1)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(files[0].body), &cfg))
	port, err := localcluster.FreePort()
	require.NoError(t, err)
	telemetryReader(t, cfg)["port"] = port
	body, err := yaml.Marshal(cfg)
	require.NoError(t, err)

	sink := otlpsink.Start(t)
	gwTLS, agentTLS := tlsDirs(t)
	gwc, err := localcluster.NewCollector(localcluster.CollectorOptions{Name: "gateway", Bin: bin, Config: writeConfig(t, "gateway.yaml", string(body)), Dir: t.TempDir(),
		Overrides: []string{
			"yaml:service::pipelines::traces::receivers: [otlp]",
			"yaml:receivers::otlp::protocols::grpc::endpoint: ${env:KUBESTITCH_OTLP_GRPC_ENDPOINT}",
			"yaml:extensions::health_check::endpoint: ${env:KUBESTITCH_HEALTH_ENDPOINT}",
			"yaml:extensions::file_storage::directory: ${env:KUBESTITCH_STATE_DIR}",
			"yaml:exporters::prometheus::endpoint: ${env:KUBESTITCH_PROMETHEUS_ENDPOINT}",
			"yaml:extensions::pprof::endpoint: ${env:KUBESTITCH_PPROF_ENDPOINT}",
		},
		Env: slices.Concat(podEnv, tlsEnv(gwTLS), []string{"KUBESTITCH_BACKEND_ENDPOINT=" + sink.Endpoint})})
	require.NoError(t, err)
	require.NoError(t, gwc.Start(t.Context()))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", localcluster.LogTail(gwc.Log, 40))
		}
		_ = gwc.Stop()
	})

	// A sender with the agents' certificate: the gateway takes no other.
	client := otlpsink.Client(t, gwc.OTLPEndpoint, agentCredentials(t, agentTLS))
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr(fragment.KeyServiceName, "sender")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	now := time.Now()
	app := spans.AppendEmpty()
	app.SetTraceID(pcommon.TraceID{1, 2, 3})
	app.SetSpanID(pcommon.SpanID{1})
	app.SetName("GET /")
	app.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Second)))
	app.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
	// A fragment no key signed: counted as unverified.
	forged := spans.AppendEmpty()
	forged.SetTraceID(fragment.TraceID("uid-1", "gen:1"))
	forged.SetSpanID(fragment.ObjectSpanID("uid-1", "Deployment", "gen:1"))
	forged.SetName(fragment.ObjectPhase("Deployment", "gen:1"))
	forged.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Second)))
	forged.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
	a := forged.Attributes()
	a.PutStr(fragment.KeyLevel, fragment.LevelObject)
	a.PutStr(fragment.KeyKind, "Deployment")
	a.PutStr(fragment.KeyUID, "uid-1")
	a.PutStr(fragment.KeyName, "web")
	a.PutStr(fragment.KeyNamespace, "default")
	a.PutStr(fragment.KeyTrigger, "gen:1")
	a.PutInt(fragment.KeyTriggerTime, now.Add(-time.Second).UnixNano())
	_, err = client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(td))
	require.NoError(t, err)

	// Served where the shipped reader says (MY_POD_IP), once the spans left
	// for the backend.
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	var names map[string]bool
	if !assert.Eventually(t, func() bool {
		names = scrapeNames(url)
		return names["otelcol_k8sstitch_fragments_unverified"] && names["otelcol_exporter_sent_spans"]
	}, 30*time.Second, 500*time.Millisecond, "the gateway counts the unverified fragment and the spans sent, on %s", url) {
		t.Fatalf("it serves: %v", keys(names))
	}
	otelcol := 0
	for name := range names {
		if !strings.HasPrefix(name, "otelcol_") {
			continue // target_info, the HTTP handler's own
		}
		otelcol++
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && documented[b] != "" {
				base = b
			}
		}
		assert.Contains(t, documented, base, "the gateway serves %s, which no documentation.md names", name)
	}
	assert.Greater(t, otelcol, 10)
	// Two the rules use, served verbatim (the others need a failure or an
	// operation to appear; their names are documented, which
	// TestMonitoringRulesNameRealMetrics checks).
	for _, m := range []string{"otelcol_k8sstitch_fragments_unverified", "otelcol_receiver_refused_spans"} {
		assert.True(t, names[m], "%s, as the rules name it", m)
	}
}

// scrapeNames are the metric names of a Prometheus text scrape.
func scrapeNames(url string) map[string]bool {
	samples, err := promtext.Scrape(context.Background(), nil, url)
	if err != nil {
		return nil
	}
	return samples.Names()
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
