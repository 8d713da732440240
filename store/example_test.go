package store_test

import (
	"fmt"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// printer is a ChangelogWriter that prints what a logged store sends.
type printer struct{}

func (printer) SendChangelog(topic string, partition int32, key, value []byte) error {
	if value == nil {
		fmt.Printf("changelog %s[%d] %s=<tombstone>\n", topic, partition, key)
		return nil
	}
	fmt.Printf("changelog %s[%d] %s=%s\n", topic, partition, key, value)
	return nil
}

func ExampleNewKeyValueStore() {
	engine := store.NewMemoryEngine()
	defer engine.Close()
	counts := store.NewKeyValueStore("counts", engine, serde.String(), serde.String(),
		store.WithChangelog(store.ChangelogTopic("fraud", "counts"), 0, printer{}))

	_ = counts.Put("card-2", "b")
	_ = counts.Put("card-1", "a")
	_ = counts.Put("cust-9", "c")
	_ = counts.Delete("card-2")

	it, err := counts.Prefix("card-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer it.Close()
	for it.Next() {
		fmt.Println(it.Key(), it.Value())
	}
	// Output:
	// changelog fraud-counts-changelog[0] card-2=b
	// changelog fraud-counts-changelog[0] card-1=a
	// changelog fraud-counts-changelog[0] cust-9=c
	// changelog fraud-counts-changelog[0] card-2=<tombstone>
	// card-1 a
}
