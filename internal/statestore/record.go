package statestore

import (
	"encoding/json"
	"errors"
	"fmt"
)

// record is the envelope of every stored value: a version, then the
// component's record. A component that changes what it stores raises its
// version; a record of another version (a rollback, or a store written by
// a newer release) is not read as if it were the current one.
type record struct {
	V int             `json:"v"`
	R json.RawMessage `json:"r"`
}

// VersionError says a stored record is of a version the component does
// not read.
type VersionError struct{ Got, Want int }

func (e *VersionError) Error() string {
	return fmt.Sprintf("stored record of version %d, this release reads version %d", e.Got, e.Want)
}

// Reason names, for a storage_errors counter, why a stored record could
// not be read: "version" (another release's) or "record" (damaged).
func Reason(err error) string {
	var ve *VersionError
	if errors.As(err, &ve) {
		return "version"
	}
	return "record"
}

// Encode wraps rec, as JSON, in an envelope of version.
func Encode(version int, rec any) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return json.Marshal(record{V: version, R: b})
}

// Decode reads a record Encode wrote with version into rec. A record
// written before records had versions is read as version 1, the format of
// that time.
func Decode(b []byte, version int, rec any) error {
	var r record
	if err := json.Unmarshal(b, &r); err == nil && r.V > 0 && len(r.R) > 0 {
		if r.V != version {
			return &VersionError{Got: r.V, Want: version}
		}
		return json.Unmarshal(r.R, rec)
	}
	if version != 1 {
		return &VersionError{Got: 1, Want: version}
	}
	return json.Unmarshal(b, rec)
}
