// Package examples holds runnable brook applications, one per folder; each
// runs with `go run ./examples/NAME` and needs no infrastructure by default.
package examples
