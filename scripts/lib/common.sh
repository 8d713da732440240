# Shared helpers for scripts/kafka, scripts/registry and scripts/test.
# shellcheck shell=bash

BROOK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Where running services keep their state (pid, config, data, logs).
BROOK_SERVICES_DIR="${BROOK_SERVICES_DIR:-$BROOK_ROOT/.brook-services}"
# Downloads and builds cached between runs.
BROOK_CACHE_DIR="${BROOK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/brook}"

die() { echo "${0##*/}: $*" >&2; exit 1; }

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

# pid_alive PIDFILE PATTERN: the pid in PIDFILE runs a command line that
# contains PATTERN (so a recycled pid is never mistaken for our process).
pid_alive() {
	local pidfile=$1 pattern=$2 pid
	[[ -f $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

# stop_pid PIDFILE PATTERN NAME: TERM the process, wait up to 30s, then KILL.
stop_pid() {
	local pidfile=$1 pattern=$2 name=$3 pid i
	if ! pid_alive "$pidfile" "$pattern"; then
		rm -f "$pidfile"
		echo "$name: not running"
		return 0
	fi
	pid=$(<"$pidfile")
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		pid_alive "$pidfile" "$pattern" || break
		sleep 0.1
	done
	if pid_alive "$pidfile" "$pattern"; then
		echo "$name: did not stop in 30s, killing $pid" >&2
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.5
	fi
	rm -f "$pidfile"
	echo "$name: stopped (pid $pid)"
}
