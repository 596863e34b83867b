// Package statestore opens a component's storage extension client, the
// one way both the k8s_watch receiver and the k8s_stitch processor do it.
package statestore

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// DamagedError says the storage extension is configured but could not open
// the component's store (a truncated or corrupt file_storage file). The
// component goes on without its stored state: the file survives container
// restarts (an emptyDir), so failing Start would crash-loop the pod.
type DamagedError struct{ Err error }

func (e *DamagedError) Error() string {
	return "the stored state could not be opened; going on without it: " + e.Err.Error()
}

func (e *DamagedError) Unwrap() error { return e.Err }

// Open returns the client of the storage extension storageID for the
// component (kind, id). A storage that is not configured, or is not a
// storage extension, is a configuration error (Start fails and says so);
// one that fails to open returns a *DamagedError, for the caller to log,
// count and go on without.
func Open(ctx context.Context, host component.Host, storageID component.ID, kind component.Kind, id component.ID) (storage.Client, error) {
	ext, ok := host.GetExtensions()[storageID]
	if !ok {
		return nil, fmt.Errorf("storage %s is not a configured extension", storageID)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("extension %s is not a storage extension", storageID)
	}
	c, err := se.GetClient(ctx, kind, storedAs(id), "")
	if err != nil {
		return nil, &DamagedError{Err: err}
	}
	return c, nil
}

// legacyTypes are the component types before lower_snake_case, by their
// new names. A storage extension names a component's store by its ID
// (file_storage: a file receiver_k8swatch_...): the store keeps the old
// type's name, so state written before the rename, or under the old name
// (still accepted as a deprecated alias), opens under either name.
var legacyTypes = map[string]component.Type{
	"k8s_watch":  component.MustNewType("k8swatch"),
	"k8s_stitch": component.MustNewType("k8sstitch"),
}

// storedAs is the ID a component's store is named by.
func storedAs(id component.ID) component.ID {
	if old, ok := legacyTypes[id.Type().String()]; ok {
		return component.NewIDWithName(old, id.Name())
	}
	return id
}
