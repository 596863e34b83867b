package deploy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
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
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	out, err := exec.Command(filepath.Join(root, script)).Output()
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
	objs := selfSigned(t)
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
}
