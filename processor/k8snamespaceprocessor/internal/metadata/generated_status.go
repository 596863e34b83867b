// Written by hand to match what mdatagen generates from metadata.yaml: the
// one mdatagen release the module proxy serves pins an older collector (see
// VERSIONS.md at the repository root), so it is not a tool of this module.

package metadata

import (
	"go.opentelemetry.io/collector/component"
)

var (
	Type      = component.MustNewType("k8snamespace")
	ScopeName = "github.com/kubestitch/kubestitch/processor/k8snamespaceprocessor"
)

const (
	TracesStability = component.StabilityLevelAlpha
)
