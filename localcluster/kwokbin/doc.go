// Package kwokbin only pins the kwok binary built for the local test bed.
package kwokbin
