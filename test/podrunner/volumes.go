package podrunner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// volumes writes the container's volumes under dir and says where they
// mount (the ServiceAccount's token among them: the admission plugin added
// it to the pod as a projected volume).
func (r *Runner) volumes(ctx context.Context, pod *corev1.Pod, c corev1.Container, dir string) ([]mount, error) {
	var fsGroup *int64
	if pod.Spec.SecurityContext != nil {
		fsGroup = pod.Spec.SecurityContext.FSGroup
	}
	byName := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		byName[v.Name] = v
	}
	var out []mount
	for _, vm := range c.VolumeMounts {
		v, ok := byName[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %s: no such volume", vm.Name)
		}
		if vm.SubPath != "" {
			return nil, fmt.Errorf("volumeMount %s: subPath is not supported here", vm.Name)
		}
		src := filepath.Join(dir, "volumes", v.Name)
		if err := os.MkdirAll(src, 0o755); err != nil {
			return nil, err
		}
		var files map[string][]byte
		mode := int32(0o644)
		switch {
		case v.ConfigMap != nil:
			cm, err := r.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if len(v.ConfigMap.Items) > 0 {
				return nil, fmt.Errorf("volume %s: items are not supported here", v.Name)
			}
			files = map[string][]byte{}
			for k, s := range cm.Data {
				files[k] = []byte(s)
			}
			mode = ptr.Deref(v.ConfigMap.DefaultMode, mode)
		case v.Secret != nil:
			s, err := r.client.CoreV1().Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if len(v.Secret.Items) > 0 {
				return nil, fmt.Errorf("volume %s: items are not supported here", v.Name)
			}
			files, mode = s.Data, ptr.Deref(v.Secret.DefaultMode, mode)
		case v.Projected != nil:
			// The ServiceAccount admission plugin's kube-api-access volume.
			var err error
			if files, err = r.projected(ctx, pod, v.Projected); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			mode = ptr.Deref(v.Projected.DefaultMode, mode)
		case v.EmptyDir != nil:
			// Writable by the pod's user; its group is the fsGroup.
			if err := os.Chmod(src, 0o777); err != nil {
				return nil, err
			}
			if fsGroup != nil {
				if err := os.Chown(src, 0, int(*fsGroup)); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("volume %s: only configMap, secret, projected and emptyDir are supported here", v.Name)
		}
		if err := writeFiles(src, files, mode, fsGroup); err != nil {
			return nil, err
		}
		out = append(out, mount{src: src, dst: vm.MountPath, readOnly: vm.ReadOnly})
	}
	return out, nil
}

// projected is a projected volume's files, as the kubelet writes them: a
// token for the pod's ServiceAccount from the TokenRequest API, bound to
// the pod object; ConfigMap keys (kube-root-ca.crt: the cluster's CA, as
// kube-controller-manager publishes it); downward API fields.
func (r *Runner) projected(ctx context.Context, pod *corev1.Pod, v *corev1.ProjectedVolumeSource) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, src := range v.Sources {
		switch {
		case src.ServiceAccountToken != nil:
			sat := src.ServiceAccountToken
			spec := authenticationv1.TokenRequestSpec{
				ExpirationSeconds: sat.ExpirationSeconds,
				BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
			}
			if sat.Audience != "" {
				spec.Audiences = []string{sat.Audience}
			}
			tr, err := r.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
			if err != nil {
				return nil, fmt.Errorf("token for ServiceAccount %s: %w", pod.Spec.ServiceAccountName, err)
			}
			files[sat.Path] = []byte(tr.Status.Token)
		case src.ConfigMap != nil:
			cm, err := r.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, src.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			for _, it := range src.ConfigMap.Items {
				d, ok := cm.Data[it.Key]
				if !ok {
					return nil, fmt.Errorf("ConfigMap %s has no %s", cm.Name, it.Key)
				}
				files[it.Path] = []byte(d)
			}
		case src.DownwardAPI != nil:
			for _, it := range src.DownwardAPI.Items {
				if it.FieldRef == nil {
					return nil, fmt.Errorf("downward API %s: only fieldRefs are supported here", it.Path)
				}
				val, err := fieldRef(pod, it.FieldRef.FieldPath)
				if err != nil {
					return nil, err
				}
				files[it.Path] = []byte(val)
			}
		default:
			return nil, fmt.Errorf("only serviceAccountToken, configMap and downwardAPI sources are supported here")
		}
	}
	return files, nil
}

// writeFiles writes a volume's files with the pod's mode, root-owned with
// the fsGroup as their group, as the kubelet does.
func writeFiles(dir string, files map[string][]byte, mode int32, fsGroup *int64) error {
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p := filepath.Join(dir, k)
		if err := os.WriteFile(p, files[k], 0o600); err != nil {
			return err
		}
		if fsGroup != nil {
			if err := os.Chown(p, 0, int(*fsGroup)); err != nil {
				return err
			}
		}
		if err := os.Chmod(p, os.FileMode(mode)&os.ModePerm); err != nil {
			return err
		}
	}
	return nil
}
