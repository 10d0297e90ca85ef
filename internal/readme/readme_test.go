// Package readme checks that every Go snippet in README.md compiles: each
// ```go block must appear, line for line, in snippets_test.go, which the
// compiler checks with every go vet and go test.
package readme

import (
	"os"
	"strings"
	"testing"
)

// goBlocks returns the ```go blocks of markdown, each as its lines.
func goBlocks(markdown string) [][]string {
	var blocks [][]string
	var cur []string
	in := false
	for _, line := range strings.Split(markdown, "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```go":
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, cur)
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// normalize drops blank lines and the package and import clauses, and
// trims indentation (which a snippet's place in a function changes) and
// collapses runs of spaces (which gofmt aligns).
func normalize(lines []string) []string {
	var out []string
	inImport := false
	for _, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case t == "", strings.HasPrefix(t, "package "):
			continue
		case t == "import (":
			inImport = true
			continue
		case inImport:
			if t == ")" {
				inImport = false
			}
			continue
		case strings.HasPrefix(t, "import "):
			continue
		}
		out = append(out, strings.Join(strings.Fields(t), " "))
	}
	return out
}

func contains(hay, needle []string) bool {
	for i := 0; i+len(needle) <= len(hay); i++ {
		match := true
		for j := range needle {
			if hay[i+j] != needle[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

func TestReadmeSnippetsCompile(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// A snippet that imports a module of its own (otelsession) is
	// compiled there, in its example_test.go.
	var hay []string
	for _, f := range []string{"snippets_test.go", "../../otelsession/example_test.go"} {
		mirror, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		hay = append(hay, normalize(strings.Split(string(mirror), "\n"))...)
	}
	blocks := goBlocks(string(readme))
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```go blocks: did the fence change?")
	}
	for _, b := range blocks {
		if n := normalize(b); !contains(hay, n) {
			t.Errorf("this README snippet is not in internal/readme/snippets_test.go (or otelsession/example_test.go), so nothing proves it compiles; copy it there (inside a function if need be):\n%s", strings.Join(b, "\n"))
		}
	}
}

// The two set-up commands are in the README, and CI runs the test one.
func TestSetupCommands(t *testing.T) {
	readme, _ := os.ReadFile("../../README.md")
	for _, cmd := range []string{"\ngo run ./examples/basic\n", "\ngo test -race -timeout 30m ./...\n"} {
		if !strings.Contains(string(readme), cmd) {
			t.Errorf("README.md lacks the set-up command %q", strings.TrimSpace(cmd))
		}
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ci), "go test -race ") || !strings.Contains(string(ci), "-timeout 30m ./...") {
		t.Error(".ci/run does not run the README's test command (go test -race -timeout 30m ./...)")
	}
}
