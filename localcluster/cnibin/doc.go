//go:build tools

// Package cnibin only pins the CNI plugins (bridge, host-local, loopback,
// portmap) built for the test bed's real nodes.
package cnibin

import (
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/containernetworking/plugins/plugins/meta/portmap"
)
