package deploy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/kubestitch/kubestitch/localcluster"
)

// selfSigned runs deploy/components/admission/self-signed.sh and returns
// the objects it prints.
func selfSigned(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	return scriptObjects(t, filepath.Join("deploy", "components", "admission", "self-signed.sh"))
}

// fragmentKey runs deploy/fragment-key.sh: the Secrets every install needs.
func fragmentKey(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	return scriptObjects(t, filepath.Join("deploy", "fragment-key.sh"))
}

// scriptObjects runs a script of the repository that prints objects for
// kubectl apply, and decodes them.
func scriptObjects(t *testing.T, script string) []*unstructured.Unstructured {
	t.Helper()
	return scriptObjectsIn(t, script, t.TempDir())
}

// scriptObjectsIn is scriptObjects run in dir: what a script writes beside
// what it prints (self-signed.sh: kube-apiserver's files) goes there, not
// into the repository.
func scriptObjectsIn(t *testing.T, script, dir string) []*unstructured.Unstructured {
	t.Helper()
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	cmd := exec.Command(filepath.Join(root, script))
	cmd.Dir = dir
	out, err := cmd.Output()
	require.NoError(t, err, script)
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

// TestSelfSignedScript: the script's Secret holds a serving certificate
// for the gateway Service that the webhook's caBundle verifies, and the
// webhook is the component's, with the CA filled in.
func TestSelfSignedScript(t *testing.T) {
	dir := t.TempDir()
	objs := scriptObjectsIn(t, filepath.Join("deploy", "components", "admission", "self-signed.sh"), dir)
	require.Len(t, objs, 2, "a Secret and the ValidatingWebhookConfiguration")
	var secret corev1.Secret
	var hook admissionregv1.ValidatingWebhookConfiguration
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(objs[0].Object, &secret))
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(objs[1].Object, &hook))
	assert.Equal(t, "kubestitch-webhook-tls", secret.Name)
	assert.Equal(t, corev1.SecretTypeTLS, secret.Type)
	_, err := tls.X509KeyPair(secret.Data["tls.crt"], secret.Data["tls.key"])
	require.NoError(t, err, "certificate and key match")

	require.Len(t, hook.Webhooks, 1)
	w := hook.Webhooks[0]
	assert.Equal(t, admissionregv1.Ignore, *w.FailurePolicy)
	assert.Equal(t, admissionregv1.SideEffectClassNone, *w.SideEffects)
	assert.Equal(t, int32(2), *w.TimeoutSeconds)
	assert.Equal(t, "kubestitch-gateway", w.ClientConfig.Service.Name)
	assert.Empty(t, hook.Annotations, "no cert-manager injection without cert-manager")
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(w.ClientConfig.CABundle), "caBundle is PEM")
	block, _ := pem.Decode(secret.Data["tls.crt"])
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "kubestitch-gateway.kubestitch.svc", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	assert.NoError(t, err, "the apiserver can verify the gateway by its Service name")

	// kube-apiserver's side (trust finding 7): its client certificate,
	// named for the webhook's host, of the CA the receiver checks
	// (client_ca_file: the Secret's ca.crt), and the admission
	// configuration that points at it where the README says to put it.
	assert.Equal(t, w.ClientConfig.CABundle, secret.Data["ca.crt"], "the receiver's client CA is the webhook's CA")
	clientPool := x509.NewCertPool()
	require.True(t, clientPool.AppendCertsFromPEM(secret.Data["ca.crt"]))
	kc, err := clientcmd.LoadFromFile(filepath.Join(dir, "kubestitch-apiserver", "webhook-kubeconfig.yaml"))
	require.NoError(t, err)
	for _, name := range []string{"kubestitch-gateway.kubestitch.svc", "kubestitch-gateway.kubestitch.svc:443"} {
		u := kc.AuthInfos[name]
		require.NotNil(t, u, "a client certificate for %s", name)
		pair, err := tls.X509KeyPair(u.ClientCertificateData, u.ClientKeyData)
		require.NoError(t, err)
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		require.NoError(t, err)
		_, err = leaf.Verify(x509.VerifyOptions{Roots: clientPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		assert.NoError(t, err, "the receiver takes kube-apiserver's client certificate")
		assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage, "it cannot serve")
	}
	b, err := os.ReadFile(filepath.Join(dir, "kubestitch-apiserver", "admission-config.yaml"))
	require.NoError(t, err)
	var ac struct {
		Kind    string
		Plugins []struct {
			Name          string
			Configuration struct {
				Kind           string
				KubeConfigFile string `json:"kubeConfigFile"`
			}
		}
	}
	require.NoError(t, yaml.Unmarshal(b, &ac))
	assert.Equal(t, "AdmissionConfiguration", ac.Kind)
	require.Len(t, ac.Plugins, 1)
	assert.Equal(t, "ValidatingAdmissionWebhook", ac.Plugins[0].Name)
	assert.Equal(t, "/etc/kubernetes/kubestitch/webhook-kubeconfig.yaml", ac.Plugins[0].Configuration.KubeConfigFile)
}
