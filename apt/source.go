package apt

// Source is one APT source: a mirror URI, a suite and its components.
type Source struct {
	URI        string
	Suite      string
	Components []string
}
