package fetch

import "io/fs"

// fileOwner: Windows files have no uid.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }
