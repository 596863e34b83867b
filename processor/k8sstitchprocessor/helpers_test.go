package k8sstitchprocessor

import "github.com/kubestitch/kubestitch/processor/k8sstitchprocessor/internal/metadata"

var metadataType = metadata.Type
