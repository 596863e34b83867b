package localcluster

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// DemoDeployment is a small Deployment for kwok nodes.
func DemoDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "app", Image: "registry.example/web:1"}},
				},
			},
		},
	}
}

// RunDemoImage makes the demo Deployment d run the test bed's workload
// image (Cluster.DemoImage, on a containerd node), ready when the
// workload's own HTTP endpoint answers. Every pod pulls it (Always): each
// pod start has its PullImage, whichever pod's pull came first.
func RunDemoImage(d *appsv1.Deployment, image string) {
	c := &d.Spec.Template.Spec.Containers[0]
	c.Image = image
	c.ImagePullPolicy = corev1.PullAlways
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
}
