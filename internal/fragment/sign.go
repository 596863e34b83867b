package fragment

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// KeySignature carries a fragment's signature: the signing key's ID (8
// hex digits, KeyID) and base64 of the first 16 bytes of
// HMAC-SHA256(key, the span's canonical form), joined by a colon. The ID
// lets a verifier that holds the current and the previous key (a
// rotation) pick the one to check with. Fragments shape the
// owner graph and close operations, so the processor takes a span as a
// fragment only when this verifies with the key k8swatch signed it with;
// any OTLP sender can set the other keys.
const KeySignature = "kubestitch.fragment.signature"

// KeyUnverified marks, for people reading a backend, a span that carried
// fragment keys without a valid signature: the processor moved it to a
// trace of its own (UnverifiedTraceID).
const KeyUnverified = "kubestitch.fragment.unverified"

// MinKeyBytes is the shortest fragment key accepted: 256 bits.
const MinKeyBytes = 32

// sigVersion prefixes the signed form: change it and every signature
// changes. v2 covers links, trace state, flags and the resource keys
// routing reads (SignedResourceKeys).
const sigVersion = "kubestitch/sig/v2"

// SignedResourceKeys are the resource attributes a signature covers: what
// the gateways route a fragment by (k8snamespace shards by namespace) and
// the lane it is drawn in. Other resource attributes may be added on the
// way (a collector's resource processor) without breaking it.
var SignedResourceKeys = []string{KeyServiceName, KeyNamespace}

// sigLen is how much of the HMAC is kept: 128 bits, as many as a forger
// would have to guess.
const sigLen = 16

// A Key signs and verifies fragments. The zero Key is no key.
type Key struct {
	secret []byte
	id     string
}

// ID names the key in signatures: 8 hex digits of a SHA-256 of it, which
// tell keys apart and say nothing of them.
func (k Key) ID() string { return k.id }

func keyID(secret []byte) string {
	sum := sha256.Sum256(append([]byte("kubestitch/key-id\x00"), secret...))
	return hex.EncodeToString(sum[:4])
}

// ReadKey reads a fragment key from a file (a mounted Secret): at least
// MinKeyBytes bytes once surrounding white space is trimmed.
func ReadKey(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("fragment key: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < MinKeyBytes {
		return Key{}, fmt.Errorf("fragment key %s: %d bytes, want at least %d (for example: head -c 32 /dev/urandom | base64)", path, len(b), MinKeyBytes)
	}
	return Key{secret: b, id: keyID(b)}, nil
}

// NewKey returns a key of secret, for tests and for callers that hold it.
func NewKey(secret []byte) (Key, error) {
	if len(secret) < MinKeyBytes {
		return Key{}, errors.New("fragment key: too short")
	}
	return Key{secret: slices.Clone(secret), id: keyID(secret)}, nil
}

// IsZero says there is no key.
func (k Key) IsZero() bool { return len(k.secret) == 0 }

// Sign sets the span's signature, over the span and its resource's
// SignedResourceKeys (res: the resource's attributes). Call it last: any later change to the span breaks
// the signature.
func (k Key) Sign(res pcommon.Map, s ptrace.Span) {
	s.Attributes().PutStr(KeySignature, k.id+":"+base64.RawStdEncoding.EncodeToString(k.mac(res, s)))
}

// Verify says whether the span carries a signature made with k over what
// it and its resource's SignedResourceKeys hold now.
func (k Key) Verify(res pcommon.Map, s ptrace.Span) bool {
	if k.IsZero() {
		return false
	}
	id, got, ok := signatureOf(s)
	if !ok || id != k.id {
		return false
	}
	return hmac.Equal(got, k.mac(res, s))
}

// signatureOf reads a span's signature: the key ID and the MAC.
func signatureOf(s ptrace.Span) (string, []byte, bool) {
	v, ok := s.Attributes().Get(KeySignature)
	if !ok || v.Type() != pcommon.ValueTypeStr {
		return "", nil, false
	}
	id, b64, ok := strings.Cut(v.Str(), ":")
	if !ok {
		return "", nil, false
	}
	got, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(got) != sigLen {
		return "", nil, false
	}
	return id, got, true
}

// Keys verifies with whichever of its keys signed a span: the current
// key, and during a rotation the previous one.
type Keys []Key

// Verify says whether one of the keys, the one the signature names,
// signed the span as it is now.
func (ks Keys) Verify(res pcommon.Map, s ptrace.Span) bool {
	id, _, ok := signatureOf(s)
	if !ok {
		return false
	}
	for _, k := range ks {
		if !k.IsZero() && k.id == id {
			return k.Verify(res, s)
		}
	}
	return false
}

// mac is the truncated HMAC of the span's canonical form: IDs, trace
// state, flags, name, kind, times, status, every attribute but the
// signature (sorted by key), every event and every link, and the
// resource's SignedResourceKeys. Everything a processor or a router reads
// is covered, so a signed span cannot be changed in flight either.
func (k Key) mac(res pcommon.Map, s ptrace.Span) []byte {
	m := hmac.New(sha256.New, k.secret)
	var buf [8]byte
	str := func(v string) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(v)))
		m.Write(buf[:])
		m.Write([]byte(v))
	}
	num := func(v uint64) {
		binary.BigEndian.PutUint64(buf[:], v)
		m.Write(buf[:])
	}
	str(sigVersion)
	ra := res
	for _, key := range SignedResourceKeys {
		v, ok := ra.Get(key)
		str(key)
		if !ok {
			str("")
			continue
		}
		str(v.Type().String())
		str(v.AsString())
	}
	tid, sid, pid := s.TraceID(), s.SpanID(), s.ParentSpanID()
	m.Write(tid[:])
	m.Write(sid[:])
	m.Write(pid[:])
	str(s.TraceState().AsRaw())
	num(uint64(s.Flags()))
	str(s.Name())
	num(uint64(s.Kind()))
	num(uint64(s.StartTimestamp()))
	num(uint64(s.EndTimestamp()))
	num(uint64(s.Status().Code()))
	str(s.Status().Message())
	attrs(s.Attributes(), str)
	evs := s.Events()
	num(uint64(evs.Len()))
	for i := 0; i < evs.Len(); i++ {
		e := evs.At(i)
		str(e.Name())
		num(uint64(e.Timestamp()))
		attrs(e.Attributes(), str)
	}
	links := s.Links()
	num(uint64(links.Len()))
	for i := 0; i < links.Len(); i++ {
		l := links.At(i)
		ltid, lsid := l.TraceID(), l.SpanID()
		m.Write(ltid[:])
		m.Write(lsid[:])
		str(l.TraceState().AsRaw())
		num(uint64(l.Flags()))
		attrs(l.Attributes(), str)
	}
	return m.Sum(nil)[:sigLen]
}

// attrs writes how many entries a map has, the signature aside, and then
// each, sorted by key, as key, type and value.
func attrs(a pcommon.Map, str func(string)) {
	keys := make([]string, 0, a.Len())
	for k := range a.All() {
		if k != KeySignature {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	str(strconv.Itoa(len(keys)))
	for _, k := range keys {
		v, _ := a.Get(k)
		str(k)
		str(v.Type().String())
		str(v.AsString())
	}
}
