package k8sstitchprocessor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

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

// loadKey reads the fragment key, if one is configured, and the previous
// key of a rotation if its file is there (its absence is no rotation).
func (p *stitchProcessor) loadKey() error {
	if p.cfg.FragmentKeyFile == "" {
		return nil
	}
	k, err := fragment.ReadKey(p.cfg.FragmentKeyFile)
	if err != nil {
		return err
	}
	p.keys = fragment.Keys{k}
	if f := p.cfg.PreviousFragmentKeyFile; f != "" {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			p.set.Logger.Info("k8sstitch: no previous fragment key (its file is absent): fragments verify with the fragment key only", zap.String("key_id", k.ID()))
			return nil
		}
		prev, err := fragment.ReadKey(f)
		if err != nil {
			return fmt.Errorf("previous_fragment_key_file: %w", err)
		}
		if prev.ID() != k.ID() {
			p.keys = append(p.keys, prev)
		}
	}
	ids := make([]string, len(p.keys))
	for i, k := range p.keys {
		ids[i] = k.ID()
	}
	p.set.Logger.Info("k8sstitch: fragments verify with these keys (current first)", zap.Strings("key_ids", ids))
	return nil
}

// verified says whether a span with fragment keys is a fragment: signed
// with the fragment key. The signature is checked once, here, and then
// removed: the span is rewritten into its operation's trace, which breaks
// it anyway.
func (p *stitchProcessor) verified(res pcommon.Map, s ptrace.Span) bool {
	if p.cfg.AcceptUnsignedFragments {
		return true
	}
	if !p.keys.Verify(res, s) {
		return false
	}
	s.Attributes().Remove(fragment.KeySignature)
	return true
}
