// Package apt resolves what to install the way APT would, without apt or
// dpkg on the host: it opens each source's signed Release (InRelease, or
// Release and Release.gpg), verifies it against the trusted keyrings and
// refuses an older or mismatched one, loads the Packages indices it
// vouches for into a Universe, and resolves a variant's package set and
// the user's --include into a lockfile.Plan pinned by hash (Resolve).
// Everything read from a mirror is bounded, and a failed check is an
// error, never a warning.
package apt
