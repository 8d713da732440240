package processor

import (
	"fmt"
	"reflect"

	"github.com/brookstream/brook/store"
)

// KeyValueStore returns the key-value store named name connected to the
// processor behind ctx, typed as store.KeyValueStore[K,V]. It fails with an
// *UnknownStoreError if the store is not connected to the node, and with a
// *StoreTypeError if the store was declared with other key/value types or
// is not a key-value store.
//
// Window, session and TTL stores have helpers of their own:
// [WindowStore], [SessionStore], [TTLStore]. A TTL store is also a key-value store, so KeyValueStore
// returns it too (as a plain key-value view).
func KeyValueStore[K, V any](ctx StoreProvider, name string) (store.KeyValueStore[K, V], error) {
	return typedStore[store.KeyValueStore[K, V]](ctx, name)
}

// WindowStore returns the window store named name connected to the
// processor behind ctx, typed as store.WindowStore[K,V]. It fails as
// [KeyValueStore] does: *UnknownStoreError for a store not connected to
// the node, *StoreTypeError for other types or another kind of store.
func WindowStore[K, V any](ctx StoreProvider, name string) (store.WindowStore[K, V], error) {
	return typedStore[store.WindowStore[K, V]](ctx, name)
}

// TTLStore returns the TTL store named name connected to the processor
// behind ctx, typed as store.TTLStore[K,V]. It fails as [KeyValueStore]
// does: *UnknownStoreError for a store not connected to the node,
// *StoreTypeError for other types or another kind of store.
func TTLStore[K, V any](ctx StoreProvider, name string) (store.TTLStore[K, V], error) {
	return typedStore[store.TTLStore[K, V]](ctx, name)
}

// SessionStore returns the session store named name connected to the
// processor behind ctx, typed as store.SessionStore[K,V]. It fails as
// [KeyValueStore] does: *UnknownStoreError for a store not connected to
// the node, *StoreTypeError for other types or another kind of store.
func SessionStore[K, V any](ctx StoreProvider, name string) (store.SessionStore[K, V], error) {
	return typedStore[store.SessionStore[K, V]](ctx, name)
}

// TimestampedKeyValueStore returns the timestamped key-value store named
// name connected to the processor behind ctx (the store of a DSL
// aggregation), typed as store.TimestampedKeyValueStore[K,V]. It fails as
// [KeyValueStore] does. KeyValueStore returns the same store as a plain
// key-value store.
func TimestampedKeyValueStore[K, V any](ctx StoreProvider, name string) (store.TimestampedKeyValueStore[K, V], error) {
	return typedStore[store.TimestampedKeyValueStore[K, V]](ctx, name)
}

func typedStore[S any](ctx StoreProvider, name string) (S, error) {
	var zero S
	s, err := ctx.StateStore(name)
	if err != nil {
		return zero, err
	}
	typed, ok := s.(S)
	if !ok {
		return zero, &StoreTypeError{
			Store: name,
			Want:  reflect.TypeFor[S]().String(),
			Got:   fmt.Sprintf("%T", s),
		}
	}
	return typed, nil
}

// UnknownStoreError reports a store that is not connected to the node
// asking for it, or not declared at all. It is brook's one error for an
// unknown store name: a processor's ctx.StateStore and an interactive
// query (package query, Node "") both return it.
type UnknownStoreError struct {
	// Node is the processor node that asked; "" when an interactive query
	// asked.
	Node string
	// Store is the name it asked for.
	Store string
	// Connected lists the stores Node could have named: those connected
	// to it, or, for a query, every store of the topology.
	Connected []string
}

// Error implements error.
func (e *UnknownStoreError) Error() string {
	if e.Node == "" {
		return fmt.Sprintf("processor: no store %q in the topology (stores: %v)", e.Store, e.Connected)
	}
	return fmt.Sprintf("processor: node %q: store %q is not connected to this node (connected: %v); connect it with topology.WithStores(%q)",
		e.Node, e.Store, e.Connected, e.Store)
}

// StoreTypeError reports a store fetched with types or a kind other than
// those it was declared with.
type StoreTypeError struct {
	// Store is the store's name.
	Store string
	// Want is the type asked for, Got the store's actual type.
	Want, Got string
}

// Error implements error.
func (e *StoreTypeError) Error() string {
	return fmt.Sprintf("processor: store %q is a %s, not a %s", e.Store, e.Got, e.Want)
}

// UnknownChildError reports ForwardTo with a name that is not a child of
// the forwarding node.
type UnknownChildError struct {
	// Node is the forwarding node, Child the name asked for.
	Node, Child string
	// Children lists Node's children.
	Children []string
}

// Error implements error.
func (e *UnknownChildError) Error() string {
	return fmt.Sprintf("processor: node %q: cannot forward to %q: not a child of this node (children: %v)", e.Node, e.Child, e.Children)
}

// VersionedKeyValueStore returns the versioned key-value store named name
// connected to the processor behind ctx (a topology.VersionedStore, or
// the store of a table declared with topology.Versioned), typed as
// store.VersionedKeyValueStore[K,V]. It fails as [KeyValueStore] does.
func VersionedKeyValueStore[K, V any](ctx StoreProvider, name string) (store.VersionedKeyValueStore[K, V], error) {
	return typedStore[store.VersionedKeyValueStore[K, V]](ctx, name)
}
