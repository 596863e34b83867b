package k8swatchreceiver

// changeLog lists the objects whose state changed since it was last taken
// (what emitted something, and objects gone), for storage. Off, it records
// nothing. Its owner (the tracker) locks it.
type changeLog struct {
	on      bool
	changed map[string]struct{}
}

// start turns change tracking on.
func (c *changeLog) start() {
	c.on, c.changed = true, map[string]struct{}{}
}

// mark records, when on, that uid's state changed.
func (c *changeLog) mark(uid string) {
	if c.on {
		c.changed[uid] = struct{}{}
	}
}

// take calls fn with every object changed since the last take, and starts
// anew.
func (c *changeLog) take(fn func(uid string)) {
	for uid := range c.changed {
		fn(uid)
	}
	clear(c.changed)
}
