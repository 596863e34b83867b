package k8swatchreceiver

// The parts of fragment spans, for tests to read: objectOf panics on a
// span of another level, sliOf is nil for one.

func objectOf(p spanPart) *objectPart { return p.(*objectPart) }

func stepOf(p spanPart) *stepPart { return p.(*stepPart) }

func sliOf(p spanPart) *sliPart {
	s, _ := p.(*sliPart)
	return s
}
