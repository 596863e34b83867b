package statestore

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type testRecord struct {
	UID  string `json:"u"`
	Gens []int  `json:"g,omitempty"`
}

func TestRecordVersions(t *testing.T) {
	in := testRecord{UID: "a", Gens: []int{1, 2}}
	b, err := Encode(1, in)
	require.NoError(t, err)
	var out testRecord
	require.NoError(t, Decode(b, 1, &out))
	assert.Equal(t, in, out)

	// A store written by another release is not read as this one's.
	b2, err := Encode(2, in)
	require.NoError(t, err)
	var ve *VersionError
	require.True(t, errors.As(Decode(b2, 1, &out), &ve))
	assert.Equal(t, VersionError{Got: 2, Want: 1}, *ve)

	// A record from before versions is version 1.
	out = testRecord{}
	require.NoError(t, Decode([]byte(`{"u":"old","g":[3]}`), 1, &out))
	assert.Equal(t, testRecord{UID: "old", Gens: []int{3}}, out)
	require.True(t, errors.As(Decode([]byte(`{"u":"old"}`), 2, &out), &ve))

	assert.Error(t, Decode([]byte(`{"v":1,"r":{"u":1}}`), 1, &out), "a damaged record")
}
