package fragment

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func signedSpan(t testing.TB, k Key) ptrace.Span {
	t.Helper()
	s := ptrace.NewSpan()
	s.SetTraceID(TraceID("uid-1", "gen:1"))
	s.SetSpanID(ObjectSpanID("uid-1", "Pod", "gen:1"))
	s.SetName("pod.startup")
	s.SetStartTimestamp(pcommon.Timestamp(1e18))
	s.SetEndTimestamp(pcommon.Timestamp(1e18 + 5e9))
	s.Attributes().PutStr(KeyLevel, LevelObject)
	s.Attributes().PutStr(KeyUID, "uid-1")
	s.Attributes().PutStr(KeyOwnerUID, "rs-1")
	e := s.Events().AppendEmpty()
	e.SetName("Pulled")
	e.Attributes().PutStr("k8s.event.message", "pulled")
	k.Sign(fragmentResource(), s)
	return s
}

// fragmentResource is the resource k8s_watch gives a pod's fragments.
func fragmentResource() pcommon.Map {
	r := pcommon.NewMap()
	r.PutStr(KeyServiceName, "kubelet")
	r.PutStr(KeyNamespace, "default")
	return r
}

func TestSignedFragmentVerifiesOnlyUnchangedAndWithItsKey(t *testing.T) {
	k, err := NewKey([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	other, err := NewKey([]byte("fedcba9876543210fedcba9876543210"))
	require.NoError(t, err)

	assert.True(t, k.Verify(fragmentResource(), signedSpan(t, k)))
	assert.False(t, other.Verify(fragmentResource(), signedSpan(t, k)), "another key")

	for name, change := range map[string]func(pcommon.Map, ptrace.Span){
		"owner":   func(_ pcommon.Map, s ptrace.Span) { s.Attributes().PutStr(KeyOwnerUID, "rs-2") },
		"new key": func(_ pcommon.Map, s ptrace.Span) { s.Attributes().PutStr(KeyTrigger, "gen:2") },
		"end":     func(_ pcommon.Map, s ptrace.Span) { s.SetEndTimestamp(s.EndTimestamp() + 1) },
		"parent":  func(_ pcommon.Map, s ptrace.Span) { s.SetParentSpanID(pcommon.SpanID{1}) },
		"event": func(_ pcommon.Map, s ptrace.Span) {
			s.Events().At(0).Attributes().PutStr("k8s.event.message", "x")
		},
		"status":      func(_ pcommon.Map, s ptrace.Span) { s.Status().SetCode(ptrace.StatusCodeError) },
		"no sig":      func(_ pcommon.Map, s ptrace.Span) { s.Attributes().Remove(KeySignature) },
		"sig not b64": func(_ pcommon.Map, s ptrace.Span) { s.Attributes().PutStr(KeySignature, "!!") },
		"sig as int":  func(_ pcommon.Map, s ptrace.Span) { s.Attributes().PutInt(KeySignature, 1) },
		// Trust finding 9: what routing and backends read beside the
		// span's own fields.
		"link":         func(_ pcommon.Map, s ptrace.Span) { s.Links().AppendEmpty().SetTraceID(pcommon.TraceID{9}) },
		"trace state":  func(_ pcommon.Map, s ptrace.Span) { s.TraceState().FromRaw("k=v") },
		"flags":        func(_ pcommon.Map, s ptrace.Span) { s.SetFlags(1) },
		"namespace":    func(r pcommon.Map, _ ptrace.Span) { r.PutStr(KeyNamespace, "victim") },
		"no namespace": func(r pcommon.Map, _ ptrace.Span) { r.Remove(KeyNamespace) },
		"service":      func(r pcommon.Map, _ ptrace.Span) { r.PutStr(KeyServiceName, "kube-scheduler") },
	} {
		s := signedSpan(t, k)
		res := fragmentResource()
		change(res, s)
		assert.False(t, k.Verify(res, s), name)
	}
	// Other resource attributes may be added on the way.
	res := fragmentResource()
	res.PutStr("k8s.cluster.name", "prod")
	assert.True(t, k.Verify(res, signedSpan(t, k)), "an added resource attribute")
	// Attribute order is not part of what is signed: a receiver may
	// rebuild the map in another order.
	s := signedSpan(t, k)
	m := pcommon.NewMap()
	keys := []string{}
	for key := range s.Attributes().All() {
		keys = append([]string{key}, keys...)
	}
	for _, key := range keys {
		v, _ := s.Attributes().Get(key)
		v.CopyTo(m.PutEmpty(key))
	}
	m.CopyTo(s.Attributes())
	assert.True(t, k.Verify(fragmentResource(), s))
}

func TestReadKeyWantsEnoughBytes(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("too short\n"), 0o600))
	_, err := ReadKey(short)
	assert.ErrorContains(t, err, "at least 32")

	_, err = ReadKey(filepath.Join(dir, "missing"))
	assert.ErrorContains(t, err, "fragment key")

	good := filepath.Join(dir, "key")
	require.NoError(t, os.WriteFile(good, []byte("  0123456789abcdef0123456789abcdef\n"), 0o600))
	k, err := ReadKey(good)
	require.NoError(t, err)
	want, _ := NewKey([]byte("0123456789abcdef0123456789abcdef"))
	assert.True(t, want.Verify(fragmentResource(), signedSpan(t, k)), "white space around the key is not part of it")
}

// TestKeysVerifyAcrossARotation (trust finding 8): every signature names
// its key; a verifier holding the current and the previous key takes
// fragments signed with either (agents restart onto the new key one by
// one), one holding only the new key refuses the old key's, and a
// signature naming one key but made with another is refused.
func TestKeysVerifyAcrossARotation(t *testing.T) {
	old, err := NewKey([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	cur, err := NewKey([]byte("fedcba9876543210fedcba9876543210"))
	require.NoError(t, err)
	require.NotEqual(t, old.ID(), cur.ID())
	byOld, byCur := signedSpan(t, old), signedSpan(t, cur)
	sig, _ := byOld.Attributes().Get(KeySignature)
	assert.True(t, strings.HasPrefix(sig.Str(), old.ID()+":"), "the signature names its key")

	during := Keys{cur, old}
	assert.True(t, during.Verify(fragmentResource(), byOld), "the previous key's fragment, during the rotation")
	assert.True(t, during.Verify(fragmentResource(), byCur), "the new key's")
	after := Keys{cur}
	assert.False(t, after.Verify(fragmentResource(), byOld), "the old key's, once it is dropped")
	assert.True(t, after.Verify(fragmentResource(), byCur))

	// The old key's MAC under the new key's ID.
	forged := signedSpan(t, old)
	v, _ := forged.Attributes().Get(KeySignature)
	_, mac, _ := strings.Cut(v.Str(), ":")
	forged.Attributes().PutStr(KeySignature, cur.ID()+":"+mac)
	assert.False(t, during.Verify(fragmentResource(), forged))
}

// BenchmarkSign and BenchmarkVerify: the cost of the signature per
// fragment (a pod's object span with one event), next to BenchmarkSpanID
// (one SpanID hash) as the baseline of the same run.
func BenchmarkSign(b *testing.B) {
	k, err := NewKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	s := signedSpan(b, k)
	res := fragmentResource()
	b.ReportAllocs()
	for b.Loop() {
		k.Sign(res, s)
	}
}

func BenchmarkVerify(b *testing.B) {
	k, err := NewKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	s := signedSpan(b, k)
	keys := Keys{k}
	res := fragmentResource()
	b.ReportAllocs()
	for b.Loop() {
		if !keys.Verify(res, s) {
			b.Fatal("does not verify")
		}
	}
}
