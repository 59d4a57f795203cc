package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// markdownFiles returns README.md and docs/*.md, as paths from this
// directory.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join("..", "README.md")}, files...)
	if len(files) < 2 {
		t.Fatalf("no Markdown files found: %v", files)
	}
	return files
}

var (
	inlineLink = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	headingRe  = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
)

// proseLines returns the lines of a Markdown text, those of fenced code
// blocks (and their fences) blanked, so that an index is a line number - 1.
func proseLines(text string) []string {
	var out []string
	fence := ""
	for _, line := range strings.Split(text, "\n") {
		trim := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trim, fence) {
				fence = ""
			}
			out = append(out, "")
			continue
		}
		if strings.HasPrefix(trim, "```") || strings.HasPrefix(trim, "~~~") {
			fence = trim[:3]
			out = append(out, "")
			continue
		}
		out = append(out, line)
	}
	return out
}

// slug is GitHub's anchor for a heading: lower case, every character that
// is not a letter, mark, digit, connector (underscore), space or hyphen
// removed, spaces turned into hyphens.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsDigit(r) || unicode.Is(unicode.Pc, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the anchors GitHub makes for the headings of a Markdown
// text: a repeated slug gets -1, -2, ... as on GitHub.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range proseLines(text) {
		m := headingRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		// A link in a heading contributes its text.
		h := inlineLink.ReplaceAllStringFunc(m[2], func(l string) string { return l[1:strings.Index(l, "](")] })
		s := slug(h)
		if n := seen[s]; n > 0 {
			out[s+"-"+strconv.Itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

func TestSlug(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Mirrors' slots and publications", "mirrors-slots-and-publications"},
		{"Federated queries: `peer.schema.table`", "federated-queries-peerschematable"},
		{"EXECUTE peer('sql')", "execute-peersql"},
		{"PAUSE MIRROR, RESUME MIRROR", "pause-mirror-resume-mirror"},
		{"Temporary tables: Sluice touches only its own", "temporary-tables-sluice-touches-only-its-own"},
		{"snake_case and Ünïcode 2", "snake_case-and-ünïcode-2"},
	} {
		if got := slug(c.in); got != c.want {
			t.Errorf("slug(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	a := anchors("# A\n```\n# not a heading\n```\n## A\n### A\n")
	for _, want := range []string{"a", "a-1", "a-2"} {
		if !a[want] {
			t.Errorf("anchors: %q missing from %v", want, a)
		}
	}
	if a["not-a-heading"] {
		t.Errorf("a heading in a code block made an anchor: %v", a)
	}
}

// TestRelativeLinks checks that every relative link in README.md and
// docs/*.md names an existing file, and that an #anchor into a Markdown
// file names one of its headings.
func TestRelativeLinks(t *testing.T) {
	checked := 0
	for _, file := range markdownFiles(t) {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range proseLines(string(text)) {
			line = codeSpan.ReplaceAllString(line, "") // links are not links in code
			for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				path, anchor, _ := strings.Cut(target, "#")
				dest := file
				if path != "" {
					dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(path))
				}
				body, err := os.ReadFile(dest)
				if err != nil {
					if st, serr := os.Stat(dest); serr == nil && st.IsDir() && anchor == "" {
						continue
					}
					t.Errorf("%s (line %d): link %q: %s does not exist", file, i+1, target, dest)
					continue
				}
				if anchor == "" || !strings.HasSuffix(dest, ".md") {
					continue
				}
				if !anchors(string(body))[anchor] {
					t.Errorf("%s (line %d): link %q: %s has no heading with anchor #%s", file, i+1, target, dest, anchor)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative links found: the scan is broken")
	}
}
