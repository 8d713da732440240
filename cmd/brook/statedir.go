package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/brookstream/brook/internal/runtime"
)

// taskFolder matches the folder of a task, "<sub-topology>_<partition>".
var taskFolder = regexp.MustCompile(`^[0-9]+_[0-9]+$`)

// brookEntry reports whether name is an entry brook writes in
// <StateDir>/<ApplicationID>: task folders, the global tables' folder.
func brookEntry(name string) bool {
	return taskFolder.MatchString(name) || name == "global"
}

// inspectState lists the application's state folder dir.
func inspectState(dir string) (*statePlan, error) {
	sp := &statePlan{Dir: dir}
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return sp, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the state folder: %w", err)
	}
	sp.Exists = true
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == runtime.LockFileName:
			continue
		case brookEntry(name) && e.IsDir():
			sp.Entries = append(sp.Entries, name)
		default:
			sp.Foreign = append(sp.Foreign, name)
		}
		err := filepath.WalkDir(filepath.Join(dir, name), func(_ string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				if info, err := d.Info(); err == nil {
					sp.Bytes += info.Size()
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read the state folder: %w", err)
		}
	}
	slices.Sort(sp.Entries)
	slices.Sort(sp.Foreign)
	return sp, nil
}

// lockState takes the lock a running instance holds on the state folder
// dir: a *topology.StateDirLockedError names the holder's pid when an
// instance uses it.
func lockState(dir string) (release func() error, err error) {
	release, err = runtime.LockStateDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wipe local state: %w", err)
	}
	return release, nil
}

// wipeState removes every entry of the state folder dir but the lock
// file, which the caller holds.
func wipeState(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("wipe local state: %w", err)
	}
	for _, e := range entries {
		if e.Name() == runtime.LockFileName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("wipe local state: %w", err)
		}
	}
	return nil
}
