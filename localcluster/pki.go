package localcluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki writes a CA, the apiserver's serving certificate, one client
// certificate per component and the service-account key pair into dir.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

func newPKI(dir string) (*pki, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubestitch-localcluster-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{dir: dir, caCert: cert, caKey: key}
	if err := writePEM(p.path("ca.crt"), "CERTIFICATE", der); err != nil {
		return nil, err
	}
	if err := writeKey(p.path("ca.key"), key); err != nil {
		return nil, err
	}
	// The service-account key pair signs and verifies tokens.
	sa, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeKey(p.path("sa.key"), sa); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return nil, err
	}
	return p, writePEM(p.path("sa.pub"), "PUBLIC KEY", pub)
}

var serial int64 = 1

// issue writes name.crt and name.key: a serving certificate for 127.0.0.1
// and localhost when server is true, else a client certificate.
func (p *pki) issue(name, cn string, orgs []string, server bool) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		// The cluster network reaches the apiserver at ControlPlaneIP, pods
		// at the kubernetes Service's ClusterIP.
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1"), net.ParseIP(ControlPlaneIP)}
		tmpl.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return err
	}
	if err := writePEM(p.path(name+".crt"), "CERTIFICATE", der); err != nil {
		return err
	}
	return writeKey(p.path(name+".key"), key)
}

// kubeconfig writes name.kubeconfig for the client certificate name.
func (p *pki) kubeconfig(name, server string) (string, error) {
	path := p.path(name + ".kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: local
  context: {cluster: local, user: %s}
current-context: local
`, server, p.path("ca.crt"), name, p.path(name+".crt"), p.path(name+".key"), name)
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der)
}

// ServingCert issues a serving certificate for 127.0.0.1 from the
// cluster's CA, for a webhook the apiserver calls: it returns the
// certificate and key files and the CA bundle (PEM) that the webhook
// configuration's caBundle takes. Available after Prepare.
func (c *Cluster) ServingCert(name string) (certFile, keyFile string, caBundle []byte, err error) {
	if err := c.pki.issue(name, name, nil, true); err != nil {
		return "", "", nil, err
	}
	caBundle, err = os.ReadFile(c.pki.path("ca.crt"))
	return c.pki.path(name + ".crt"), c.pki.path(name + ".key"), caBundle, err
}

// WebhookClientCA is the CA file that kube-apiserver's client certificate
// for webhooks is of: a webhook that checks client certificates (as
// deploy/'s k8s_admission does) takes it as client_ca_file.
func (c *Cluster) WebhookClientCA() string { return c.pki.path("ca.crt") }

// webhookAdmissionConfig writes kube-apiserver's admission configuration:
// for every webhook it calls (the user '*'), the webhook-client
// certificate, as deploy/control-plane/admission-config.yaml sets it up
// for the k8s_admission webhook.
func (c *Cluster) webhookAdmissionConfig() (string, error) {
	p := c.pki
	kubeconfig := p.path("webhook-client.kubeconfig")
	body := fmt.Sprintf(`apiVersion: v1
kind: Config
users:
- name: '*'
  user:
    client-certificate: %s
    client-key: %s
`, p.path("webhook-client.crt"), p.path("webhook-client.key"))
	if err := os.WriteFile(kubeconfig, []byte(body), 0o600); err != nil {
		return "", err
	}
	path := p.path("admission-config.yaml")
	body = fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %s
`, kubeconfig)
	return path, os.WriteFile(path, []byte(body), 0o600)
}

func (c *Cluster) issueCerts() error {
	p := c.pki
	if err := p.issue("apiserver", "kube-apiserver", nil, true); err != nil {
		return err
	}
	for _, u := range []struct{ name, cn, org string }{
		{"admin", "kubestitch-admin", "system:masters"},
		{"controller-manager", "system:kube-controller-manager", ""},
		{"scheduler", "system:kube-scheduler", ""},
		{"kwok", "kwok", "system:masters"},
		// kube-apiserver's client certificate for the webhooks it calls
		// (webhookAdmissionConfig).
		{"webhook-client", "kube-apiserver-webhook-client", ""},
	} {
		var orgs []string
		if u.org != "" {
			orgs = []string{u.org}
		}
		if err := p.issue(u.name, u.cn, orgs, false); err != nil {
			return err
		}
	}
	return nil
}
