#!/bin/sh
# What `make test` needs beyond Go, checked before anything is built: one
# line per thing missing, then exit 1, instead of a test failing twenty
# minutes in. .ci/run installs iptables and runc when they are missing; the
# rest comes with a Debian machine.
missing=0
need() { # need WHAT WHY
	echo "make test: $1: $2" >&2
	missing=1
}
want_go=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)
have_go=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
if [ -z "$have_go" ]; then
	need "Go $want_go or later is missing" "everything is built from Go modules"
elif [ "$(printf '%s\n%s\n' "$want_go" "$have_go" | sort -V | head -n1)" != "$want_go" ]; then
	need "Go $have_go is older than go.mod's $want_go" "install Go $want_go"
fi
[ "$(id -u)" = 0 ] || need "must run as root" "the real kubelet node and test/podrunner make network and mount namespaces and mounts"
for c in iptables:iptables ip:iproute2 chroot:coreutils mount:mount unshare:util-linux nsenter:util-linux runc:runc git:git sha256sum:coreutils gcc:gcc make:make; do
	cmd=${c%%:*} pkg=${c#*:}
	command -v "$cmd" >/dev/null 2>&1 || need "$cmd is missing (apt-get install -y $pkg)" "the tests use it"
done
grep -qw overlay /proc/filesystems 2>/dev/null || modprobe overlay 2>/dev/null || need "the kernel has no overlayfs" "test/podrunner runs each pod on the image's root file system under an overlay"
exit $missing
