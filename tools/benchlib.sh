# benchlib.sh - process and port helpers shared by the tools/bench_*.sh sections.
# shellcheck shell=sh
# Sourced, not run. The section defines say() and PY (python3) and keeps its started
# PIDs in $PIDS; STOP_WAIT_S (default 10) is how long a process may take after SIGTERM.

# Stops one process we started: TERM, up to STOP_WAIT_S seconds, then KILL.
stop_pid() {
    p=$1
    kill -TERM "$p" 2>/dev/null || return 0
    i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt $((${STOP_WAIT_S:-10} * 10)) ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$p" 2>/dev/null; then
        say "process $p ignored SIGTERM for ${STOP_WAIT_S:-10} s: SIGKILL"
        kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
}

# Drops a PID from $PIDS once the section stopped it itself.
forget_pid() {
    rest=""
    for q in $PIDS; do [ "$q" = "$1" ] || rest="$rest $q"; done
    PIDS=$rest
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port seconds pid
    i=0
    while [ $i -lt $(($2 * 10)) ]; do
        kill -0 "$3" 2>/dev/null || return 1
        "$PY" -c 'import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(("127.0.0.1",int(sys.argv[1]))))' "$1" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# A process's peak resident set (VmHWM in /proc/<pid>/status), in KiB; nothing if it is gone.
vmhwm_kib() {
    awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

# CPU seconds a process has used so far (user + system, all threads, /proc/<pid>/stat
# fields 14 and 15 after the command name); nothing if it is gone.
cpu_s() {
    sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null |
        awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($12 + $13) / hz }' || true
}

# CPU seconds of a process's threads: "main=S,writer=S[,walckpt=S]" where main is the thread
# whose id is the pid (ingestd's broker loop), writer the thread named ingestd-writer, else
# the busiest other thread (an ingestd from before the names), walckpt the WAL checkpointer
# (cc-walckpt; SQLite only); nothing if the process is gone.
thread_cpu_s() {
    for t in /proc/$1/task/*; do
        printf '%s %s ' "${t##*/}" "$(tr ' ' _ <"$t/comm" 2>/dev/null)"
        sed 's/^.*) //' "$t/stat" 2>/dev/null || echo
    done | awk -v pid="$1" -v hz="$(getconf CLK_TCK)" '
        NF > 10 {
            s = ($14 + $15) / hz
            if ($1 == pid) main = s
            else if ($2 == "ingestd-writer") named = s
            else if ($2 == "cc-walckpt") ckpt = s
            else if (s > busiest) busiest = s
        }
        END {
            if (main == "") exit
            printf "main=%.2f,writer=%.2f", main, named != "" ? named : busiest
            if (ckpt != "") printf ",walckpt=%.2f", ckpt
            printf "\n"
        }' || true
}

# Nanoseconds since the epoch (GNU date), for spans that start in the shell.
now_ns() {
    date +%s%N
}
