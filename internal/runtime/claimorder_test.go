package runtime

import (
	"context"
	"slices"
	"testing"
)

// TestQueueTiesGoToTablePartitions: partitions registered in claimOrder
// put a task's table partitions first, so at equal timestamps the table
// update is processed before the stream record, whatever the order of
// the claims map (a map: its iteration order varies from run to run).
func TestQueueTiesGoToTablePartitions(t *testing.T) {
	claims := map[string][]int32{"txns": {1, 0}, "customers": {0, 1}, "audit": {0}}
	tables := map[string]bool{"customers": true}
	want := []tpKey{{"customers", 0}, {"customers", 1}, {"audit", 0}, {"txns", 0}, {"txns", 1}}
	for range 20 { // map order differs between iterations
		if got := claimOrder(claims, tables); !slices.Equal(got, want) {
			t.Fatalf("claimOrder = %v, want %v", got, want)
		}
	}
	for range 20 {
		q := newRecordQueue(10, nil)
		for _, k := range claimOrder(map[string][]int32{"txns": {0}, "customers": {0}}, tables) {
			q.addPartition(k.topic, k.partition)
		}
		ctx := context.Background()
		// The stream record arrives first; the tie still goes to the table.
		if !q.push(ctx, msg("txns", 0, 0, 100)) || !q.push(ctx, msg("customers", 0, 0, 100)) {
			t.Fatal("push refused")
		}
		m, ok := q.pop()
		if !ok || m.Topic != "customers" {
			t.Fatalf("first at a tie: %v, want the table's record", m)
		}
	}
}
