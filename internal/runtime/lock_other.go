//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package runtime

import (
	"errors"
	"os"
)

// lockFile takes the lock by creating path exclusively; releasing removes
// it. Without flock on this platform, a crashed instance leaves the file
// behind: the next start is then refused with the pid it recorded, and the
// file must be removed by hand once no instance runs.
func lockFile(path string) (*dirLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil, errLocked
	}
	if err != nil {
		return nil, err
	}
	if err := writePID(f); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return &dirLock{f: f, release: func() error {
		return errors.Join(f.Close(), os.Remove(path))
	}}, nil
}
