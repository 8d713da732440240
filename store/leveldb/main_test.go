package leveldb_test

import (
	"testing"

	"go.uber.org/goleak"
)

// goleveldb's mpoolDrain exits up to a second after DB.Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"))
}
