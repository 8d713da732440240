package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one system's process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	events chan event
	exited chan struct{}
	logf   *os.File
	wg     sync.WaitGroup

	mu       sync.Mutex
	hwm      int64 // largest VmHWM seen, bytes
	restored int64 // the last "restored" event's count (failover workloads)
	quitc    chan struct{}
}

// startProc starts argv with stdout scanned for events and stderr written
// to logPath.
func startProc(name string, argv []string, env []string, logPath string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = lf
	out, err := cmd.StdoutPipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, events: make(chan event, 64), exited: make(chan struct{}), logf: lf, quitc: make(chan struct{})}
	p.wg.Add(1)
	go p.watchRSS() // owned by proc.stop
	p.wg.Add(1)
	go func() { // owned by proc.stop: reads events, then reaps the process
		defer p.wg.Done()
		defer close(p.exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(lf, "stdout:", line)
			var e event
			if json.Unmarshal([]byte(line), &e) == nil && e.Event == "restored" {
				p.mu.Lock()
				p.restored = e.Restored
				p.mu.Unlock()
				continue
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Event != "" {
				select {
				case p.events <- e:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	return p, nil
}

// watchRSS samples the process's VmHWM (peak RSS of its own address
// space) until it exits. The rusage of a reaped child is no good here: on
// Linux its ru_maxrss includes the harness's own RSS at the time of the
// fork/exec, and the harness holds the embedded broker's data.
func (p *proc) watchRSS() {
	defer p.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	path := fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)
	for {
		if b, err := os.ReadFile(path); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				var kb int64
				if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &kb); err == nil {
					p.mu.Lock()
					p.hwm = max(p.hwm, kb*1024)
					p.mu.Unlock()
				}
			}
		}
		select {
		case <-p.quitc:
			return
		case <-p.exited:
			return
		case <-t.C:
		}
	}
}

// waitEvent waits for an event named name (or an error event, or exit).
func (p *proc) waitEvent(name string, timeout time.Duration) (event, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case e := <-p.events:
			if e.Event == "error" {
				return e, fmt.Errorf("%s: %s", p.name, e.Msg)
			}
			if e.Event == name {
				return e, nil
			}
		case <-p.exited:
			select {
			case e := <-p.events:
				if e.Event == name {
					return e, nil
				}
				if e.Event == "error" {
					return e, fmt.Errorf("%s: %s", p.name, e.Msg)
				}
			default:
			}
			return event{}, fmt.Errorf("%s exited early: %s", p.name, p.tail())
		case <-t.C:
			return event{}, fmt.Errorf("%s: no %q event after %v", p.name, name, timeout)
		}
	}
}

// failure returns why the process stopped, if it did.
func (p *proc) failure() error {
	select {
	case <-p.exited:
	default:
		return nil
	}
	for {
		select {
		case e := <-p.events:
			if e.Event == "error" {
				return fmt.Errorf("%s", e.Msg)
			}
		default:
			return fmt.Errorf("%s exited: %s", p.name, p.tail())
		}
	}
}

// tail returns the last lines of the process's log.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.logf.Name())
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}

// cpuSeconds returns the CPU time (user + system) the process has used so
// far, from /proc/<pid>/stat (clock ticks of 1/100 s, Linux's USER_HZ).
func (p *proc) cpuSeconds() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) in
	// parentheses: state is field 3, utime 14, stime 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: unreadable /proc stat", p.name)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: short /proc stat", p.name)
	}
	var ut, st int64
	if _, err := fmt.Sscan(f[11], &ut); err != nil {
		return 0, err
	}
	if _, err := fmt.Sscan(f[12], &st); err != nil {
		return 0, err
	}
	return float64(ut+st) / 100, nil
}

// restoredRecords returns the changelog records the process has
// restored so far, as its last "restored" event said.
func (p *proc) restoredRecords() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restored
}

// kill sends SIGKILL and waits until the process has been reaped.
func (p *proc) kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.exited
	return nil
}

// stop asks the process to stop (SIGTERM), kills it after grace, and
// returns its peak RSS in bytes (sampled every 100ms while it ran).
func (p *proc) stop(grace time.Duration) int64 {
	close(p.quitc)
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	p.wg.Wait()
	p.logf.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hwm
}
