package apt

// Index names one Packages index: where it came from and the signed
// Release that vouches for it.
type Index struct {
	Source    *Source
	Release   *Release
	Component string
	Arch      string
	Path      string // relative to dists/SUITE, e.g. main/binary-amd64/Packages
	SHA256    string // of the uncompressed index
}
