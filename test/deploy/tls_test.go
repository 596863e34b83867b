package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubestitch/kubestitch/localcluster"
)

// tlsSecrets runs deploy/tls.sh: the certificates of OTLP between the
// agents and the gateways.
func tlsSecrets(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	return scriptObjects(t, filepath.Join("deploy", "tls.sh"))
}

// tlsDirs writes what deploy/tls.sh makes as the pods mount it, for
// collectors run as processes: KUBESTITCH_TLS_DIR of a gateway and of an
// agent.
func tlsDirs(t *testing.T) (gateway, agent string) {
	t.Helper()
	dirs := map[string]string{}
	for _, s := range tlsSecretsByName(t, tlsSecrets(t)) {
		dir := t.TempDir()
		for k, v := range s.Data {
			require.NoError(t, os.WriteFile(filepath.Join(dir, k), v, 0o600))
		}
		dirs[s.Name] = dir
	}
	return dirs["kubestitch-gateway-tls"], dirs["kubestitch-agent-tls"]
}

// installSecrets are the Secrets every install needs, as its README
// makes them: the fragment key and the OTLP certificates.
func installSecrets(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	return append(fragmentKey(t), tlsSecrets(t)...)
}

// agentCredentials are the gRPC credentials of an agent, from a tlsDirs
// directory: a client the gateway takes.
func agentCredentials(t *testing.T, dir string) grpc.DialOption {
	t.Helper()
	data := map[string][]byte{}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		b, err := os.ReadFile(filepath.Join(dir, k))
		require.NoError(t, err)
		data[k] = b
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(t, data)))
}

// gatewayTLSName is the name the gateways' certificate carries
// (deploy/tls.sh), which every client checks.
const gatewayTLSName = "kubestitch-gateway.kubestitch.svc"

// tlsMaterial is a deploy/tls.sh Secret's certificate and its CA.
func tlsMaterial(t *testing.T, data map[string][]byte) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	pair, err := tls.X509KeyPair(data["tls.crt"], data["tls.key"])
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(data["ca.crt"]))
	return pair, pool
}

// clientTLS is a client of the gateways with a deploy/tls.sh Secret's
// certificate, as the shipped exporters are.
func clientTLS(t *testing.T, data map[string][]byte) *tls.Config {
	t.Helper()
	pair, pool := tlsMaterial(t, data)
	return &tls.Config{ServerName: gatewayTLSName, RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// tlsEnv is the environment of collectors run as processes with the
// install's certificates: the gateway's name, as the pods have it.
func tlsEnv(dir string) []string {
	return []string{"KUBESTITCH_TLS_DIR=" + dir, "KUBESTITCH_GATEWAY_TLS_NAME=" + gatewayTLSName}
}

func tlsSecretsByName(t *testing.T, objs []*unstructured.Unstructured) map[string]corev1.Secret {
	t.Helper()
	out := map[string]corev1.Secret{}
	for _, o := range objs {
		var s corev1.Secret
		require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &s))
		out[s.Name] = s
	}
	return out
}

// TestTLSScript (trust finding 7): deploy/tls.sh makes the gateway's and
// the agents' Secrets, in their namespaces, and with them a real handshake
// goes through as the shipped configs make it: the agent checks the
// gateway's certificate for the Service's name, the gateway asks for a
// client certificate of the install's CA. A client without one, or with
// one of another CA (another run of the script), is refused.
func TestTLSScript(t *testing.T) {
	secrets := tlsSecretsByName(t, tlsSecrets(t))
	require.Len(t, secrets, 2)
	gw, agent := secrets["kubestitch-gateway-tls"], secrets["kubestitch-agent-tls"]
	assert.Equal(t, "kubestitch", gw.Namespace)
	assert.Equal(t, "kubestitch-node", agent.Namespace)
	assert.Equal(t, gw.Data["ca.crt"], agent.Data["ca.crt"], "one CA")

	gwPair, gwPool := tlsMaterial(t, gw.Data)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{gwPair}, ClientCAs: gwPool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	acceptEach(l, func(c net.Conn) {
		_ = c.(*tls.Conn).Handshake()
		_, _ = c.Write([]byte("ok"))
	})
	// dial handshakes and reads the server's first bytes: with TLS 1.3 a
	// refused client certificate shows on the first read.
	dial := func(cfg *tls.Config) error {
		c, err := tls.Dial("tcp", l.Addr().String(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 2)
		_, err = c.Read(buf)
		return err
	}
	agentPair, agentPool := tlsMaterial(t, agent.Data)
	assert.NoError(t, dial(clientTLS(t, agent.Data)), "an agent gets in")
	assert.NoError(t, dial(clientTLS(t, gw.Data)), "a gateway gets in (sharded routing)")
	assert.Error(t, dial(&tls.Config{ServerName: gatewayTLSName, RootCAs: agentPool}), "no client certificate: refused")
	other := clientTLS(t, tlsSecretsByName(t, tlsSecrets(t))["kubestitch-agent-tls"].Data)
	other.RootCAs = agentPool
	assert.Error(t, dial(other), "another CA's client: refused")
	wrongName := clientTLS(t, agent.Data)
	wrongName.ServerName = "evil.example"
	assert.Error(t, dial(wrongName), "the gateway's certificate names its Service only")
	leaf, err := x509.ParseCertificate(agentPair.Certificate[0])
	require.NoError(t, err)
	assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage, "the agents' certificate cannot serve")
}

// TestShippedOTLPIsMutualTLS (trust finding 7): in every overlay the
// gateway takes OTLP only over gRPC with a client certificate, and every
// exporter that sends to a gateway (the agents', and sharded the
// gateways' own routing) presents one and checks the gateway's against
// the install's CA; the pods mount what deploy/tls.sh makes there; and
// the backend exporter uses TLS unless the user turns it off.
func TestShippedOTLPIsMutualTLS(t *testing.T) {
	const dir = "${env:KUBESTITCH_TLS_DIR:-/etc/kubestitch/tls}"
	for _, o := range overlays {
		t.Run(o, func(t *testing.T) {
			objs := build(t, o)
			pods := 0
			for _, obj := range objs {
				if obj.GetKind() != "Deployment" && obj.GetKind() != "DaemonSet" {
					continue
				}
				pods++
				conf := confmap.NewFromStringMap(mergedConfig(t, objs, obj))
				role := obj.GetName()
				spec := podSpec(t, obj)
				secret := map[string]string{"kubestitch-gateway": "kubestitch-gateway-tls", "kubestitch-agent": "kubestitch-agent-tls"}[role]
				require.NotEmpty(t, secret, role)
				m, ok := secretMount(spec, secret)
				assert.True(t, ok && m.MountPath == "/etc/kubestitch/tls" && m.ReadOnly, "%s mounts %s at /etc/kubestitch/tls, read-only", role, secret)

				if role == "kubestitch-gateway" {
					protocols, err := conf.Sub("receivers::otlp::protocols")
					require.NoError(t, err)
					assert.ElementsMatch(t, []string{"grpc"}, slices.Collect(maps.Keys(protocols.ToStringMap())), "the gateway's OTLP: gRPC only")
					assert.Equal(t, dir+"/ca.crt", conf.Get("receivers::otlp::protocols::grpc::tls::client_ca_file"), "client certificates asked for")
					assert.Equal(t, dir+"/tls.crt", conf.Get("receivers::otlp::protocols::grpc::tls::cert_file"))
					assert.Equal(t, "${env:KUBESTITCH_BACKEND_INSECURE}", conf.Get("exporters::otlp_grpc::tls::insecure"))
					assert.Equal(t, "false", envOf(spec.Containers[0], "KUBESTITCH_BACKEND_INSECURE"), "TLS to the backend as shipped")
				}
				toGateway := map[string]string{}
				if role == "kubestitch-agent" && o != "sharded" {
					toGateway["otlp_grpc"] = "exporters::otlp_grpc::tls"
				}
				if o == "sharded" {
					toGateway["loadbalancing"] = "exporters::loadbalancing::protocol::otlp::tls"
				}
				for exp, path := range toGateway {
					assert.NotEqual(t, true, conf.Get(path+"::insecure"), "%s/%s: %s insecure", o, role, exp)
					assert.Equal(t, dir+"/ca.crt", conf.Get(path+"::ca_file"), "%s/%s: %s checks the gateway", o, role, exp)
					assert.Equal(t, dir+"/tls.crt", conf.Get(path+"::cert_file"), "%s/%s: %s presents its certificate", o, role, exp)
					assert.Equal(t, dir+"/tls.key", conf.Get(path+"::key_file"))
					assert.Equal(t, "${env:KUBESTITCH_GATEWAY_TLS_NAME:-}", conf.Get(path+"::server_name_override"))
					assert.Equal(t, gatewayTLSName, envOf(spec.Containers[0], "KUBESTITCH_GATEWAY_TLS_NAME"), "%s/%s: the name the gateways' certificate carries", o, role)
				}
			}
			assert.Equal(t, 2, pods, "an agent and a gateway")
		})
	}
}

func envOf(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// gatewayRefusesStrangers checks an installed gateway as a pod of the
// cluster would find it: its NetworkPolicy applied, and OTLP to its pod IP
// refused to a plaintext sender and to a TLS sender without a client
// certificate.
func gatewayRefusesStrangers(t *testing.T, cluster *localcluster.Cluster, install []corev1.Pod) {
	t.Helper()
	ctx := t.Context()
	_, err := cluster.Client.NetworkingV1().NetworkPolicies("kubestitch").Get(ctx, "kubestitch-gateway", metav1.GetOptions{})
	require.NoError(t, err, "the gateway's NetworkPolicy is applied")
	ip := ""
	for _, p := range install {
		if p.Namespace == "kubestitch" && p.Status.PodIP != "" {
			ip = p.Status.PodIP
		}
	}
	require.NotEmpty(t, ip, "a gateway pod's IP")
	dial := grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		return cluster.DialClusterNetwork(ctx, "tcp", addr)
	})
	td := ptrace.NewTraces()
	td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty().SetName("stranger")
	export := func(creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient("passthrough:///"+net.JoinHostPort(ip, "4317"), dial, grpc.WithTransportCredentials(creds))
		require.NoError(t, err)
		defer conn.Close()
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = ptraceotlp.NewGRPCClient(conn).Export(callCtx, ptraceotlp.NewExportRequestFromTraces(td))
		return err
	}
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":             insecure.NewCredentials(),
		"no client certificate": credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}), //nolint:gosec // the stranger trusts anything; the gateway must not
	} {
		err := export(creds)
		assert.Error(t, err, "%s OTLP from the cluster network is refused", name)
		t.Logf("%s OTLP to gateway %s: %v", name, ip, err)
	}
	// The control: the same dial with the agents' certificate gets in.
	secret, err := cluster.Client.CoreV1().Secrets("kubestitch-node").Get(ctx, "kubestitch-agent-tls", metav1.GetOptions{})
	require.NoError(t, err)
	assert.NoError(t, export(credentials.NewTLS(clientTLS(t, secret.Data))), "the same dial with the agents' certificate gets in")
}

// withPlaintextBackend sets the gateways' KUBESTITCH_BACKEND_INSECURE to
// "true", as a user whose in-cluster backend speaks plaintext OTLP does in
// an overlay of theirs: the test's backend is a plaintext listener. The
// hops between agents and gateways stay mutual TLS.
func withPlaintextBackend(t *testing.T, objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	t.Helper()
	set := 0
	for _, o := range objs {
		if o.GetKind() != "Deployment" || o.GetName() != "kubestitch-gateway" {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range cs {
			env, _ := c.(map[string]any)["env"].([]any)
			for _, e := range env {
				if m := e.(map[string]any); m["name"] == "KUBESTITCH_BACKEND_INSECURE" {
					m["value"] = "true"
					set++
				}
			}
		}
		require.NoError(t, unstructured.SetNestedSlice(o.Object, cs, "spec", "template", "spec", "containers"))
	}
	require.Equal(t, 1, set, "the gateway's KUBESTITCH_BACKEND_INSECURE")
	return objs
}

// acceptEach serves every connection l accepts with handle, on a goroutine
// of its own, until l is closed; handle's connection is closed after it.
func acceptEach(l net.Listener, handle func(net.Conn)) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}
