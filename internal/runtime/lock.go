package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// lockFileName is the file in <StateDir>/<ApplicationID> whose lock marks
// the folder as owned by a running instance.
const lockFileName = ".lock"

// StateDirLockedError reports that another instance of the application,
// in this process or another, holds its state folder: two instances
// sharing one folder would open the same LevelDB stores when tasks move.
// Give each instance on a host its own StateDir.
type StateDirLockedError struct {
	// Dir is the locked folder, <StateDir>/<ApplicationID>.
	Dir string
	// PID is the process id of the holder as it wrote it in the lock file,
	// 0 when unknown.
	PID int
}

// Error implements error.
func (e *StateDirLockedError) Error() string {
	holder := "another instance"
	if e.PID > 0 {
		holder = fmt.Sprintf("another instance (pid %d)", e.PID)
		if e.PID == os.Getpid() {
			holder = fmt.Sprintf("another App in this process (pid %d)", e.PID)
		}
	}
	return fmt.Sprintf("brook: state directory %s is in use by %s; give each instance of the application its own Config.StateDir", e.Dir, holder)
}

// dirLock is a held state-folder lock.
type dirLock struct {
	dir     string
	f       *os.File
	release func() error
}

// lockStateDir takes the lock of dir (created if needed), without waiting:
// a held lock gives a *StateDirLockedError. The lock lasts until unlock or
// the end of the process.
func lockStateDir(dir string) (*dirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("brook: state dir: %w", err)
	}
	l, err := lockFile(filepath.Join(dir, lockFileName))
	if errors.Is(err, errLocked) {
		return nil, &StateDirLockedError{Dir: dir, PID: readPID(filepath.Join(dir, lockFileName))}
	}
	if err != nil {
		return nil, fmt.Errorf("brook: lock state directory %s: %w", dir, err)
	}
	l.dir = dir
	return l, nil
}

// unlock releases the lock.
func (l *dirLock) unlock() error {
	if l == nil {
		return nil
	}
	if err := l.release(); err != nil {
		return fmt.Errorf("brook: unlock state directory %s: %w", l.dir, err)
	}
	return nil
}

// errLocked is what lockFile returns when another holder has the lock.
var errLocked = errors.New("locked by another holder")

// writePID records the holder's pid in the lock file, for the error a
// second instance gets.
func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil {
		return 0
	}
	return pid
}
