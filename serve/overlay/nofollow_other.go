//go:build !unix

package overlay

// oNoFollow: the file's type is checked after opening instead.
const oNoFollow = 0
