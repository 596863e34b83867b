package localcluster

import (
	"errors"
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// query is a DNS question for name (with the trailing dot) of type qt.
func query(t *testing.T, name string, qt dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	require.NoError(t, b.StartQuestions())
	require.NoError(t, b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: qt, Class: dnsmessage.ClassINET}))
	out, err := b.Finish()
	require.NoError(t, err)
	return out
}

// TestClusterDNSAnswersServices: a Service's name is its ClusterIP, a
// headless Service's its ready endpoints only, an existing name without
// an A record answers empty (the AAAA the Go resolver also asks), and any
// other name is NXDOMAIN (nothing is forwarded).
func TestClusterDNSAnswersServices(t *testing.T) {
	client := fake.NewClientset(
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "tempo", Namespace: "observability"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.20"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "gw-headless", Namespace: "kubestitch"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
		&discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "gw-headless-x", Namespace: "kubestitch", Labels: map[string]string{discoveryv1.LabelServiceName: "gw-headless"}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.244.0.5"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
				{Addresses: []string{"10.244.1.6"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
				{Addresses: []string{"10.244.1.7"}},
			},
		},
	)
	d := &clusterDNS{client: client, log: io.Discard}
	ask := func(name string, qt dnsmessage.Type) (dnsmessage.RCode, []string) {
		var p dnsmessage.Parser
		h, err := p.Start(d.answer(query(t, name, qt)))
		require.NoError(t, err)
		assert.Equal(t, uint16(7), h.ID)
		require.NoError(t, p.SkipAllQuestions())
		var ips []string
		for {
			rh, err := p.AnswerHeader()
			if err == dnsmessage.ErrSectionDone {
				break
			}
			require.NoError(t, err)
			require.Equal(t, dnsmessage.TypeA, rh.Type)
			a, err := p.AResource()
			require.NoError(t, err)
			ips = append(ips, net.IP(a.A[:]).String())
		}
		return h.RCode, ips
	}
	rc, ips := ask("tempo.observability.svc.cluster.local.", dnsmessage.TypeA)
	assert.Equal(t, dnsmessage.RCodeSuccess, rc)
	assert.Equal(t, []string{"10.96.0.20"}, ips)
	rc, ips = ask("GW-Headless.kubestitch.svc.cluster.local.", dnsmessage.TypeA)
	assert.Equal(t, dnsmessage.RCodeSuccess, rc)
	assert.Equal(t, []string{"10.244.0.5", "10.244.1.7"}, ips, "ready (or not said otherwise) endpoints only")
	rc, ips = ask("tempo.observability.svc.cluster.local.", dnsmessage.TypeAAAA)
	assert.Equal(t, dnsmessage.RCodeSuccess, rc)
	assert.Empty(t, ips)
	for _, name := range []string{"tempo.observability.svc.team-1.svc.cluster.local.", "example.com.", "svc.cluster.local."} {
		rc, ips = ask(name, dnsmessage.TypeA)
		assert.Equal(t, dnsmessage.RCodeNameError, rc, name)
		assert.Empty(t, ips, name)
	}
	assert.Nil(t, d.answer([]byte{1, 2, 3}), "garbage gets no answer")

	// Nothing read yet (the apiserver does not answer): SERVFAIL, which a
	// resolver retries, not an NXDOMAIN it may cache.
	failing := fake.NewClientset()
	failing.PrependReactor("list", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("apiserver unreachable")
	})
	d = &clusterDNS{client: failing, log: io.Discard}
	rc, _ = ask("tempo.observability.svc.cluster.local.", dnsmessage.TypeA)
	assert.Equal(t, dnsmessage.RCodeServerFailure, rc)
}
