// Command testsummary reads `go test -json` on stdin and prints what a
// reader of CI output needs: the usual per-package lines, the full output
// of failing tests, every skipped test with its reason, and a closing
// "N passed, N failed, N skipped" line. It exits 1 when anything failed.
//
//	go test -json ./... | go run ./scripts/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	os.Exit(run())
}

func run() int {
	type key struct{ pkg, test string }
	outputs := map[key][]string{}
	var passed, failed, skipped int
	var skips, fails []string
	buildFailed := false

	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// Build errors and other non-JSON lines pass through.
			fmt.Println(string(line))
			if len(strings.TrimSpace(string(line))) > 0 {
				buildFailed = true
			}
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			if e.Test == "" {
				// Package-level lines: ok/FAIL/? summaries, build output.
				if !strings.HasPrefix(e.Output, "=== ") && e.Output != "PASS\n" && e.Output != "FAIL\n" {
					fmt.Print(e.Output)
				}
				continue
			}
			outputs[k] = append(outputs[k], e.Output)
		case "pass":
			if e.Test != "" {
				passed++
				delete(outputs, k)
			}
		case "skip":
			if e.Test != "" {
				skipped++
				skips = append(skips, fmt.Sprintf("%s %s: %s", short(e.Package), e.Test, reason(outputs[k])))
				delete(outputs, k)
			}
		case "fail":
			if e.Test != "" {
				failed++
				fails = append(fails, fmt.Sprintf("--- FAIL: %s %s\n%s", short(e.Package), e.Test, strings.Join(outputs[k], "")))
				delete(outputs, k)
			} else {
				buildFailed = true // a package failed (tests, build or TestMain)
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary: reading go test output:", err)
		return 1
	}
	sort.Strings(skips)
	if len(skips) > 0 {
		fmt.Printf("\nskipped tests (%d):\n", len(skips))
		for _, s := range skips {
			fmt.Println("  " + s)
		}
	}
	for _, f := range fails {
		fmt.Print("\n" + f)
	}
	fmt.Printf("\n%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 || buildFailed {
		return 1
	}
	return 0
}

func short(pkg string) string { return strings.TrimPrefix(pkg, "github.com/brookstream/brook/") }

// reason is the skip message: the last output line that is not a
// "--- SKIP" or "=== RUN" marker.
func reason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") {
			continue
		}
		return l
	}
	return "(no reason given)"
}
