// Package archtest holds no code, only a test: the package layering of
// ARCHITECTURE.md §5, checked against what every package of the module
// really imports, so a wrong import fails `go test` rather than waiting for
// a reviewer.
package archtest
