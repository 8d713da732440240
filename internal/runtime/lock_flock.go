//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package runtime

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock (flock) on path. The kernel
// drops it when the file is closed or the process dies, so a crashed
// instance never leaves a stale lock. flock locks belong to the open file
// description: two Apps of one process that open the file separately
// exclude each other too.
func lockFile(path string) (*dirLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, err
	}
	return &dirLock{f: f, release: f.Close}, nil
}
