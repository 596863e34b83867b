//go:build tools

// Package containerdbin only pins containerd (the daemon, ctr and the runc
// shim) built for the test bed's real nodes.
package containerdbin

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
