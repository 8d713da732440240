package partition_test

import (
	"fmt"

	"github.com/brookstream/brook/partition"
)

func ExampleForKey() {
	// The same key lands where a Java producer with the default
	// partitioner would put it.
	p, err := partition.ForKey([]byte("foobar"), 50)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(partition.Murmur2([]byte("foobar")), p)
	// Output: -790332482 16
}
