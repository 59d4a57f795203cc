package executor

import "testing"

// TestAlterableOptionsClassified checks that every mirror option is either
// changeable by ALTER MIRROR (with a default for RESET), refused with a
// reason, or not applicable, and never two of these: a new option must be
// classified when it is added.
func TestAlterableOptionsClassified(t *testing.T) {
	for key, spec := range mirrorOptions {
		_, alterable := alterableOptions[key]
		_, fixed := fixedOptions[key]
		na := spec.kind == optNotApplicable
		n := 0
		for _, b := range []bool{alterable, fixed, na} {
			if b {
				n++
			}
		}
		if n != 1 {
			t.Errorf("option %q: alterable %v, refused %v, not applicable %v: want exactly one", key, alterable, fixed, na)
		}
		if alterable && spec.def == "" {
			t.Errorf("option %q can be changed but has no default for RESET", key)
		}
	}
	for key := range alterableOptions {
		if _, ok := mirrorOptions[key]; !ok {
			t.Errorf("alterable option %q is not a mirror option", key)
		}
	}
	for key := range fixedOptions {
		if _, ok := mirrorOptions[key]; !ok {
			t.Errorf("refused option %q is not a mirror option", key)
		}
	}
}
