package k8sstitchprocessor

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// quarantine moves a span with fragment keys but no valid signature into a
// trace of its own, derived from its original trace ID, and marks it. It
// joins no operation: a forgery copies a real fragment's trace and span
// IDs, and in the operation's trace it would sit beside the genuine span
// under the same span ID. The sender's other spans with the same trace ID
// follow it there, so its own parent links hold.
func quarantine(s ptrace.Span) {
	orig := s.TraceID()
	s.SetTraceID(fragment.UnverifiedTraceID(orig))
	a := s.Attributes()
	a.PutStr(fragment.KeyOriginalTraceID, orig.String())
	a.PutBool(fragment.KeyUnverified, true)
}

// loadKey reads the fragment key, if one is configured.
func (p *stitchProcessor) loadKey() error {
	if p.cfg.FragmentKeyFile == "" {
		return nil
	}
	k, err := fragment.ReadKey(p.cfg.FragmentKeyFile)
	p.key = k
	return err
}

// verified says whether a span with fragment keys is a fragment: signed
// with the fragment key. The signature is checked once, here, and then
// removed: the span is rewritten into its operation's trace, which breaks
// it anyway.
func (p *stitchProcessor) verified(res pcommon.Map, s ptrace.Span) bool {
	if p.cfg.AcceptUnsignedFragments {
		return true
	}
	if !p.key.Verify(res, s) {
		return false
	}
	s.Attributes().Remove(fragment.KeySignature)
	return true
}
