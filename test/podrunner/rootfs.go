package podrunner

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// The container's root and identity: what it runs, in which root, as whom.

// mount is a bind mount into the pod's root.
type mount struct {
	src, dst string
	readOnly bool
}

// command is what the container runs, as the kubelet decides it: its
// command, else the image's entrypoint; then its args, else (with no
// command of its own) the image's cmd.
func command(c corev1.Container, img Image) []string {
	if len(c.Command) > 0 {
		return append(append([]string{}, c.Command...), c.Args...)
	}
	argv := append([]string{}, img.Entrypoint...)
	if len(c.Args) > 0 {
		return append(argv, c.Args...)
	}
	return append(argv, img.Cmd...)
}

// rootScript is the shell that builds the container's root in its mount
// namespace and execs the entrypoint in it, as the pod's user: the image's
// root file system under an overlay whose upper layer is a tmpfs of the
// namespace (gone with the process), the volumes mounted over it.
func rootScript(root, image string, mounts []mount, readOnlyRoot bool, uid, gid int64, groups []int64, argv []string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("mount --make-rprivate /")
	w("R=%s", quote(root))
	w(`U="$R.rw" && mkdir -p "$U"`)
	w(`mount -t tmpfs -o mode=0755,size=16m tmpfs "$U"`)
	w(`mkdir -m 0755 "$U/upper" "$U/work"`)
	w(`mount -t overlay overlay -o lowerdir=%s,upperdir="$U/upper",workdir="$U/work" "$R"`, quote(image))
	w(`mkdir -p "$R/proc" "$R/dev" "$R/sys" "$R/tmp" "$R/etc"`)
	w(`mount -t proc proc "$R/proc"`)
	w(`mount --rbind /dev "$R/dev"`)
	w(`mount --rbind /sys "$R/sys" && mount -o remount,bind,ro "$R/sys"`)
	for _, m := range mounts {
		dst := `"$R"` + quote(m.dst)
		if st, err := os.Stat(m.src); err == nil && !st.IsDir() {
			w(`mkdir -p "$(dirname %s)" && touch %s`, dst, dst)
		} else {
			w(`mkdir -p %s`, dst)
		}
		w("mount --bind %s %s", quote(m.src), dst)
		if m.readOnly {
			w("mount -o remount,bind,ro %s", dst)
		}
	}
	if readOnlyRoot {
		w(`mount -o remount,ro "$R"`)
	}
	gs := make([]string, len(groups))
	for i, g := range groups {
		gs[i] = strconv.FormatInt(g, 10)
	}
	args := make([]string, len(argv))
	for i, a := range argv {
		args[i] = quote(a)
	}
	w(`exec chroot --userspec=%d:%d --groups=%s "$R" %s`, uid, gid, strings.Join(gs, ","), strings.Join(args, " "))
	return b.String()
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// identity is the user, group and supplementary groups the container runs
// as: the pod's securityContext, else the image's USER (imageUser).
func identity(pod *corev1.Pod, c corev1.Container, imageUser string) (uid, gid int64, groups []int64, err error) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	u := csc.RunAsUser
	if u == nil {
		u = psc.RunAsUser
	}
	g := csc.RunAsGroup
	if g == nil {
		g = psc.RunAsGroup
	}
	if u == nil {
		// USER "uid[:gid]": a name would need the image's /etc/passwd,
		// and runAsNonRoot cannot be checked against a name anyway.
		us, gs, hasGroup := strings.Cut(imageUser, ":")
		iu, err := strconv.ParseInt(us, 10, 64)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("no runAsUser, and the image's USER %q is not numeric", imageUser)
		}
		u = &iu
		if g == nil && hasGroup {
			ig, err := strconv.ParseInt(gs, 10, 64)
			if err != nil {
				return 0, 0, nil, fmt.Errorf("the image's USER %q: group is not numeric", imageUser)
			}
			g = &ig
		}
	}
	if g == nil {
		g = u
	}
	// The kubelet refuses to start a container that would run as root
	// when the pod says runAsNonRoot.
	if nonRoot := csc.RunAsNonRoot; (nonRoot != nil && *nonRoot || nonRoot == nil && ptr.Deref(psc.RunAsNonRoot, false)) && *u == 0 {
		return 0, 0, nil, fmt.Errorf("runAsNonRoot and the container would run as uid 0")
	}
	groups = append(groups, *g)
	if psc.FSGroup != nil {
		groups = append(groups, *psc.FSGroup)
	}
	groups = append(groups, psc.SupplementalGroups...)
	return *u, *g, groups, nil
}
