package store

import "testing"

func TestLevelDBEngineConformance(t *testing.T) {
	engineConformance(t, func(t *testing.T) Engine {
		e, err := OpenLevelDB(t.TempDir(), LevelDBOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	})
}
