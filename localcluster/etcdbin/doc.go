// Package etcdbin only pins the etcd server built for the local test bed.
package etcdbin
