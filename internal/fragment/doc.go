// Package fragment holds what the k8swatch receiver and the k8sstitch
// processor must agree on: the attribute keys of a fragment, the phase names,
// the object key and the deterministic span and trace IDs.
//
// Both sides derive IDs from the same recipe, so a fragment emitted twice (a
// relist, a restart, a second replica) is the same span, and a child can name
// its parent's span before that span has been emitted.
package fragment
