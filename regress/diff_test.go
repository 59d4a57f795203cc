package regress

import (
	"fmt"
	"strings"
	"testing"
)

// diffContext is how many unchanged lines surround each change.
const diffContext = 3

// unifiedDiff returns a unified diff from a to b (named aName and bName), or
// "" when they are equal. It is meant for regression output of a few hundred
// lines: it computes a longest common subsequence in O(len(a)*len(b)).
func unifiedDiff(aName, bName, a, b string) string {
	if a == b {
		return ""
	}
	al, bl := splitLines(a), splitLines(b)
	ops := diffLines(al, bl)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", aName, bName)
	for start := 0; start < len(ops); {
		// Find the next change, then extend the hunk while changes are
		// closer than twice the context.
		for start < len(ops) && ops[start].kind == ' ' {
			start++
		}
		if start == len(ops) {
			break
		}
		end := start
		for i := start; i < len(ops); i++ {
			if ops[i].kind != ' ' {
				end = i + 1
			} else if i-end >= 2*diffContext {
				break
			}
		}
		lo, hi := max(start-diffContext, 0), min(end+diffContext, len(ops))
		aStart, bStart, aCount, bCount := ops[lo].a, ops[lo].b, 0, 0
		for _, op := range ops[lo:hi] {
			if op.kind != '+' {
				aCount++
			}
			if op.kind != '-' {
				bCount++
			}
		}
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", aStart+1, aCount, bStart+1, bCount)
		for _, op := range ops[lo:hi] {
			out.WriteByte(op.kind)
			out.WriteString(op.text)
			out.WriteByte('\n')
		}
		start = hi
	}
	return out.String()
}

// diffOp is one line of a diff: ' ' kept, '-' only in a, '+' only in b; a
// and b are the 0-based line numbers where it stands in each input.
type diffOp struct {
	kind byte
	text string
	a, b int
}

func diffLines(a, b []string) []diffOp {
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []diffOp
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, diffOp{' ', a[i], i, j})
			i++
			j++
		case j < len(b) && (i == len(a) || lcs[i][j+1] > lcs[i+1][j]):
			ops = append(ops, diffOp{'+', b[j], i, j})
			j++
		default:
			ops = append(ops, diffOp{'-', a[i], i, j})
			i++
		}
	}
	return ops
}

// splitLines splits s into lines; a final newline does not start a line, a
// missing one is shown.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	if lines[len(lines)-1] == "" {
		return lines[:len(lines)-1]
	}
	lines[len(lines)-1] += "\\ No newline at end of file"
	return lines
}

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{"equal", "x\ny\n", "x\ny\n", ""},
		{"changed line", "a\nb\nc\n", "a\nB\nc\n", "--- A\n+++ B\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"},
		{"added at end", "a\n", "a\nb\n", "--- A\n+++ B\n@@ -1,1 +1,2 @@\n a\n+b\n"},
		{"removed from empty", "a\n", "", "--- A\n+++ B\n@@ -1,1 +1,0 @@\n-a\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "1\nX\n3\n4\n5\n6\n7\n8\n9\n10\nY\n12\n",
			"--- A\n+++ B\n@@ -1,5 +1,5 @@\n 1\n-2\n+X\n 3\n 4\n 5\n@@ -8,5 +8,5 @@\n 8\n 9\n 10\n-11\n+Y\n 12\n"},
		{"no final newline", "a\n", "a", "--- A\n+++ B\n@@ -1,1 +1,1 @@\n-a\n+a\\ No newline at end of file\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unifiedDiff("A", "B", tt.a, tt.b); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	vars := []variable{{"peer_port", "5432"}, {"peer_db", "t_x_1"}, {"peer_db2", "t_x_12"}}
	tests := []struct{ in, want string }{
		{"port 5432.", "port <peer_port>."},
		{"154321 and 54320 stay", "154321 and 54320 stay"},
		{`database "t_x_12", "t_x_1"`, `database "<peer_db2>", "<peer_db>"`},
		{"127.0.0.1:5432", "127.0.0.1:<peer_port>"},
		{"t_x_1a", "t_x_1a"},
	}
	for _, tt := range tests {
		if got := scrub(tt.in, vars); got != tt.want {
			t.Errorf("scrub(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
