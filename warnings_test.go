package brook_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEveryWarningSaysWhatToDo: every warning the library logs carries an
// "action" attribute telling the operator what to do about it (often
// "nothing", with why), so that a log line at warning level is never a
// riddle. Examples, the bench module and tests are not the library.
func TestEveryWarningSaysWhatToDo(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "examples", "bench", "testdata", "scripts", ".git", ".brook-services":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Warn" || len(call.Args) == 0 {
				return true
			}
			checked++
			found := false
			ast.Inspect(call, func(m ast.Node) bool {
				if lit, ok := m.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil && s == "action" {
						found = true
					}
				}
				return !found
			})
			if !found {
				t.Errorf("%s: a warning without an \"action\" attribute saying what to do", fset.Position(call.Pos()))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 30 {
		t.Fatalf("checked only %d Warn calls: is the walk finding the library?", checked)
	}
}
