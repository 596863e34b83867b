package k8snamespaceprocessor

// Config of the k8snamespace processor. It has no settings: the keys it
// reads and writes are fixed (internal/fragment), so every agent and
// gateway of a sharded deployment routes the same way.
type Config struct{}

// Validate checks the configuration at start-up.
func (*Config) Validate() error { return nil }
