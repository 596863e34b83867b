package localcluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// clusterDomain is the kubelet's clusterDomain.
const clusterDomain = "cluster.local."

// clusterDNS answers the A queries CoreDNS's kubernetes plugin would for
// Services: <service>.<namespace>.svc.cluster.local is the ClusterIP, or a
// headless Service's ready endpoints. Every other name is NXDOMAIN: it
// forwards nothing, so no query leaves the test bed.
type clusterDNS struct {
	pc     net.PacketConn
	client kubernetes.Interface
	log    io.Writer

	mu      sync.Mutex
	read    time.Time
	records map[string][]net.IP // name (lower case, with the dot) -> A
	done    chan struct{}
}

// dnsRefresh is how old the records may be: the load-balancing exporter
// re-resolves the gateways every 5 s.
const dnsRefresh = time.Second

func serveClusterDNS(pc net.PacketConn, client kubernetes.Interface, log io.Writer) *clusterDNS {
	d := &clusterDNS{pc: pc, client: client, log: log, done: make(chan struct{})}
	go d.serve()
	return d
}

func (d *clusterDNS) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := d.answer(buf[:n]); resp != nil {
			d.pc.WriteTo(resp, from) //nolint:errcheck
		}
	}
}

// answer is the response to one query message, nil for what is not one.
func (d *clusterDNS) answer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	resp := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RCode: dnsmessage.RCodeSuccess}
	ips, known, answerable := d.lookup(strings.ToLower(q.Name.String()))
	switch {
	case !answerable:
		// Nothing read from the API yet: a resolver retries a SERVFAIL,
		// where it may cache an NXDOMAIN.
		resp.RCode = dnsmessage.RCodeServerFailure
	case !known:
		resp.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), resp)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil
	}
	if q.Type == dnsmessage.TypeA && q.Class == dnsmessage.ClassINET {
		for _, ip := range ips {
			var a [4]byte
			copy(a[:], ip.To4())
			if b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}, dnsmessage.AResource{A: a}) != nil {
				return nil
			}
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// lookup is a name's addresses, whether the name exists, and whether
// the records could be read at all. A failed read keeps the last records
// and is not retried before dnsRefresh: queries do not pile up behind an
// apiserver that does not answer.
func (d *clusterDNS) lookup(name string) ([]net.IP, bool, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Since(d.read) > dnsRefresh {
		records, err := d.readRecords()
		if err != nil {
			fmt.Fprintf(d.log, "localcluster: cluster DNS: %v\n", err)
		} else {
			d.records = records
		}
		d.read = time.Now()
	}
	if d.records == nil {
		return nil, false, false
	}
	ips, ok := d.records[name]
	return ips, ok, true
}

// readRecords reads every Service's record from the API.
func (d *clusterDNS) readRecords() (map[string][]net.IP, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	svcs, err := d.client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	slices, err := d.client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	ready := map[string][]net.IP{} // namespace/service -> ready endpoints
	for _, s := range slices.Items {
		key := s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				if ip := net.ParseIP(a).To4(); ip != nil {
					ready[key] = append(ready[key], ip)
				}
			}
		}
	}
	records := map[string][]net.IP{}
	for _, svc := range svcs.Items {
		name := strings.ToLower(svc.Name + "." + svc.Namespace + ".svc." + clusterDomain)
		switch svc.Spec.ClusterIP {
		case corev1.ClusterIPNone:
			records[name] = ready[svc.Namespace+"/"+svc.Name]
		case "":
		default:
			records[name] = []net.IP{net.ParseIP(svc.Spec.ClusterIP)}
		}
	}
	return records, nil
}

// Close stops serving.
func (d *clusterDNS) Close() {
	d.pc.Close()
	<-d.done
}
