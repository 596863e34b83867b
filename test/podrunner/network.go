package podrunner

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The cluster network, as kube-proxy and CoreDNS would make it, from the
// Services and EndpointSlices in the API: every namespace gets each
// Service's ClusterIP and each running pod's IP on its lo, with the
// runner behind them; every pod's /etc/hosts holds the Service names
// (a headless Service's name: its ready endpoints), which the Go resolver
// reads before DNS. A Service's port leads to one of its ready endpoints
// that the runner runs; default/kubernetes to the API server on the host's
// loopback; a Service in Options.Backends to what that returns.

// route is one ClusterIP:port or podIP:port.
type route struct {
	service *corev1.Service // nil: a pod's own port
	port    corev1.ServicePort
}

// clusterState is what a refresh read from the API.
type clusterState struct {
	routes   map[string]route // by ip:port
	slices   map[string][]discoveryv1.EndpointSlice
	services []corev1.Service
}

// readCluster reads Services and EndpointSlices.
func (r *Runner) readCluster(ctx context.Context) (*clusterState, error) {
	svcs, err := r.client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	eps, err := r.client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	st := &clusterState{routes: map[string]route{}, slices: map[string][]discoveryv1.EndpointSlice{}, services: svcs.Items}
	for _, es := range eps.Items {
		key := es.Namespace + "/" + es.Labels[discoveryv1.LabelServiceName]
		st.slices[key] = append(st.slices[key], es)
	}
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		if svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.ClusterIP == "" {
			continue
		}
		for _, p := range svc.Spec.Ports {
			if p.Protocol == corev1.ProtocolTCP || p.Protocol == "" {
				st.routes[net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(p.Port)))] = route{service: svc, port: p}
			}
		}
	}
	return st, nil
}

// hostsFile is every pod's /etc/hosts: each Service's name, a headless
// one's as its endpoints that run here and are ready (what CoreDNS would
// answer). Called with r.mu held.
func (r *Runner) hostsFile() string {
	lines := []string{"127.0.0.1 localhost"}
	for i := range r.state.services {
		svc := &r.state.services[i]
		names := fmt.Sprintf("%s.%s.svc %s.%s.svc.cluster.local", svc.Name, svc.Namespace, svc.Name, svc.Namespace)
		switch svc.Spec.ClusterIP {
		case "":
		case corev1.ClusterIPNone:
			for _, p := range r.endpoints(svc) {
				lines = append(lines, p.IP+" "+names)
			}
		default:
			lines = append(lines, svc.Spec.ClusterIP+" "+names)
		}
	}
	sort.Strings(lines[1:])
	return strings.Join(lines, "\n") + "\n"
}

func readyAddresses(slices []discoveryv1.EndpointSlice) []string {
	var out []string
	for _, es := range slices {
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			out = append(out, ep.Addresses...)
		}
	}
	sort.Strings(out)
	return out
}

// wantedRoutes are the Service routes and every running pod's ports.
func (r *Runner) wantedRoutes() map[string]route {
	out := map[string]route{}
	for k, v := range r.state.routes {
		out[k] = v
	}
	for _, p := range r.pods {
		if p.spec.Spec.HostNetwork || p.exited() {
			continue
		}
		for _, c := range p.spec.Spec.Containers {
			for _, cp := range c.Ports {
				out[net.JoinHostPort(p.IP, strconv.Itoa(int(cp.ContainerPort)))] = route{}
			}
		}
	}
	return out
}

// ensureRoutes gives every namespace the routes it lacks. Called with
// r.mu held.
func (r *Runner) ensureRoutes() error {
	for _, ns := range r.namespaces() {
		if err := r.ensureRoutesOf(ns); err != nil && !ns.closed() {
			return err
		}
	}
	return nil
}

// ensureRoutesOf gives one namespace the routes it lacks. Called with r.mu
// held.
func (r *Runner) ensureRoutesOf(ns *netns) error {
	for hostport := range r.wantedRoutes() {
		host, _, _ := net.SplitHostPort(hostport)
		if own := r.owner[ns]; own != nil && own.IP == host && !own.spec.Spec.HostNetwork {
			continue // the pod's own address: its process listens there
		}
		if _, err := ns.route(hostport, func(c net.Conn) { r.serve(ns, hostport, c) }); err != nil {
			return err
		}
	}
	return nil
}

// namespaces are the network namespaces of every running pod and node.
func (r *Runner) namespaces() []*netns {
	var out []*netns
	for _, ns := range r.nodes {
		out = append(out, ns)
	}
	for _, p := range r.pods {
		if !p.spec.Spec.HostNetwork && p.net != nil && !p.exited() && !slices.Contains(out, p.net) {
			out = append(out, p.net)
		}
	}
	return out
}

// serve connects c, accepted at hostport inside from, to where the route
// leads now.
func (r *Runner) serve(from *netns, hostport string, c net.Conn) {
	defer c.Close()
	up, err := r.dialRoute(from, hostport)
	if err != nil {
		r.logf("route %s from %s: %v", hostport, from.name, err)
		return
	}
	defer up.Close()
	pipe(c, up)
}

func (r *Runner) dialRoute(from *netns, hostport string) (net.Conn, error) {
	r.mu.Lock()
	rt, isService := r.state.routes[hostport]
	host, port, _ := net.SplitHostPort(hostport)
	var target *Pod
	var targetAddr string
	var hostAddr string
	switch {
	case isService && rt.service.Namespace == "default" && rt.service.Name == "kubernetes":
		hostAddr = r.apiServer
	case isService && r.opts.Backends[rt.service.Namespace+"/"+rt.service.Name] != nil:
		src := ""
		if own := r.owner[from]; own != nil {
			src = own.Name
		}
		hostAddr = r.opts.Backends[rt.service.Namespace+"/"+rt.service.Name](src)
	case isService:
		// A ready endpoint that runs here, round robin, as kube-proxy picks.
		if cands := r.endpoints(rt.service); len(cands) > 0 {
			r.next++
			target = cands[r.next%len(cands)]
			targetAddr = net.JoinHostPort(target.IP, strconv.Itoa(targetPort(target, rt.port)))
		}
	default:
		if p := r.byIP(host); p != nil {
			target, targetAddr = p, net.JoinHostPort(host, port)
		}
	}
	r.mu.Unlock()
	switch {
	case hostAddr != "":
		return net.Dial("tcp", hostAddr)
	case target != nil:
		return target.net.dial(targetAddr)
	}
	return nil, fmt.Errorf("no running endpoint")
}

// endpoints are the Service's ready endpoints that run here and pass
// their readiness probe, by IP. Called with r.mu held.
func (r *Runner) endpoints(svc *corev1.Service) []*Pod {
	var out []*Pod
	for _, ip := range readyAddresses(r.state.slices[svc.Namespace+"/"+svc.Name]) {
		if p := r.byIP(ip); p != nil && p.ready {
			out = append(out, p)
		}
	}
	return out
}

// byIP is the running pod (not on the host network) with that IP.
func (r *Runner) byIP(ip string) *Pod {
	for _, p := range r.pods {
		if p.IP == ip && !p.spec.Spec.HostNetwork && !p.exited() {
			return p
		}
	}
	return nil
}

// targetPort resolves a Service port's targetPort against the pod's ports.
func targetPort(p *Pod, sp corev1.ServicePort) int {
	if sp.TargetPort.IntVal != 0 {
		return int(sp.TargetPort.IntVal)
	}
	if sp.TargetPort.StrVal != "" {
		for _, c := range p.spec.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == sp.TargetPort.StrVal {
					return int(cp.ContainerPort)
				}
			}
		}
	}
	return int(sp.Port)
}

// pipe copies both ways until both sides are done.
func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}
