// Package registrytool pins the schema registry that scripts/registry
// builds (axonops-schema-registry, a tool dependency in go.mod), keeping it
// out of brook's own module.
package registrytool
