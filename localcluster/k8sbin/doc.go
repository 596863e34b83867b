// Package k8sbin only pins the Kubernetes binaries that the local test bed
// builds with `go build` (see the tool block in go.mod).
package k8sbin
