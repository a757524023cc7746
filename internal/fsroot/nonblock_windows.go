package fsroot

// openNonblock: Windows has no FIFOs in the file system.
const openNonblock = 0
