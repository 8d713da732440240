package runtime

// LockStateDir takes the lock a running App holds on its state folder
// dir (<StateDir>/<ApplicationID>, created if needed), without waiting,
// for tools that must not change the folder while an instance uses it
// (cmd/brook reset). A held lock gives a *StateDirLockedError naming the
// holder's pid. release gives the lock back.
func LockStateDir(dir string) (release func() error, err error) {
	l, err := lockStateDir(dir)
	if err != nil {
		return nil, err
	}
	return l.unlock, nil
}

// LockFileName is the name of the lock file in a state folder; it stays
// behind after an instance stops (where flock is available), so a tool
// wiping the folder leaves it.
const LockFileName = lockFileName
