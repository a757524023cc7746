package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// abbrevAnnotation marks a command whose long options may be abbreviated
// to uniqueness, as mmdebstrap's (Perl Getopt::Long auto_abbrev) may:
// nroot bootstrap --comp=main is --components=main.
const abbrevAnnotation = "nroot.abbrev"

// expandAbbrev spells out the abbreviated long options of the command
// args name, when that command takes them (abbrevAnnotation). An
// abbreviation that fits several options is a usage error naming them;
// one that fits none is left for the flag parser to refuse.
func expandAbbrev(root *cobra.Command, args []string) ([]string, error) {
	c, _, err := root.Find(args)
	if err != nil || c.Annotations[abbrevAnnotation] == "" {
		return args, nil
	}
	var flags []*pflag.Flag
	seen := map[string]bool{}
	add := func(f *pflag.Flag) {
		if !seen[f.Name] {
			seen[f.Name] = true
			flags = append(flags, f)
		}
	}
	c.InitDefaultHelpFlag()
	c.InitDefaultVersionFlag()
	c.LocalFlags().VisitAll(add)
	c.InheritedFlags().VisitAll(add)
	lookup := func(name string) *pflag.Flag {
		for _, f := range flags {
			if f.Name == name {
				return f
			}
		}
		return nil
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if !strings.HasPrefix(a, "--") || len(a) == 2 {
			out = append(out, a)
			continue
		}
		name, value, hasValue := strings.Cut(a[2:], "=")
		f := lookup(name)
		if f == nil && name != "" {
			var fits []string
			for _, g := range flags {
				// Two spellings of one option (--hook-dir and
				// --hook-directory) are one fit, as Getopt::Long
				// counts an option's aliases once.
				if strings.HasPrefix(g.Name, name) && !slices.Contains(fits, aliasOf(g)) {
					fits = append(fits, aliasOf(g))
				}
			}
			switch len(fits) {
			case 0:
				out = append(out, a)
				continue
			case 1:
				f = lookup(fits[0])
			default:
				slices.Sort(fits)
				return nil, usageErr("option --%s is ambiguous: it could be --%s; spell more of it", name, strings.Join(fits, ", --"))
			}
			a = "--" + f.Name
			if hasValue {
				a += "=" + value
			}
		}
		out = append(out, a)
		// The next argument is this option's value: never an option.
		if !hasValue && f.NoOptDefVal == "" && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out, nil
}

// aliasOf is the option f is another spelling of (its usage says "the
// same as --NAME"), or f's own name.
func aliasOf(f *pflag.Flag) string {
	if rest, ok := strings.CutPrefix(f.Usage, "the same as --"); ok {
		if i := strings.IndexAny(rest, " ,"); i >= 0 {
			rest = rest[:i]
		}
		if rest != "" {
			return rest
		}
	}
	return f.Name
}
