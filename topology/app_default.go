package topology

import (
	"os"
	"path/filepath"
)

func defaultStateDir() string { return filepath.Join(os.TempDir(), "brook") }
