package podrunner

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// env is the container's environment as the kubelet makes it: its env
// entries with fieldRefs resolved, and the kubernetes Service's address.
func (r *Runner) env(pod *corev1.Pod, c corev1.Container) ([]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("envFrom is not supported here")
	}
	r.mu.Lock()
	var apiHost, apiPort string
	for hostport, rt := range r.state.routes {
		if rt.service.Namespace == "default" && rt.service.Name == "kubernetes" {
			apiHost, apiPort, _ = strings.Cut(hostport, ":")
		}
	}
	r.mu.Unlock()
	if apiHost == "" {
		return nil, fmt.Errorf("no ClusterIP for default/kubernetes yet")
	}
	hostname := pod.Name
	if pod.Spec.HostNetwork {
		hostname = pod.Spec.NodeName
	}
	// As a runtime makes it: a default PATH, the image's env, the pod's
	// identity and the API's Service, then the container's own (the last
	// of a name wins).
	env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, r.opts.Image.Env...)
	env = append(env, "HOSTNAME="+hostname, "KUBERNETES_SERVICE_HOST="+apiHost, "KUBERNETES_SERVICE_PORT="+apiPort)
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			if strings.Contains(e.Value, "$(") {
				return nil, fmt.Errorf("env %s: $(VAR) expansion is not supported here", e.Name)
			}
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil:
			v, err := fieldRef(pod, e.ValueFrom.FieldRef.FieldPath)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			env = append(env, e.Name+"="+v)
		default:
			return nil, fmt.Errorf("env %s: only values and fieldRefs are supported here", e.Name)
		}
	}
	return env, nil
}

func fieldRef(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	}
	return "", fmt.Errorf("fieldRef %s is not supported here", path)
}
