#!/usr/bin/env bash
# Starts, stops and reports on a local Azurite (the Azure Storage emulator) pinned by
# package.json / package-lock.json. Several instances can run side by side on different ports;
# each is known by its blob port, which keys its pid and log files under .azurite/.
#
#   scripts/azurite.sh start [--memory | --disk DIR] [--blob-port N --queue-port N --table-port N]
#                            [--owner-pid PID]
#   scripts/azurite.sh stop   [--blob-port N]
#   scripts/azurite.sh status [--blob-port N]
#
# --memory (the default) keeps all data in memory; --disk DIR keeps it in DIR so a restart keeps
# it. --owner-pid stops the instance once that process exits, so a test that dies without
# cleaning up does not leave Azurite behind. AZURITE_START_TIMEOUT (seconds, default 30) bounds
# the wait for the ports. AZURITE_ACCESS_LOG=1 adds Azurite's per-request access log to its log
# file (off by default: it costs Azurite about 8% of its CPU under load).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="$root/.azurite"
account=devstoreaccount1
key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

usage() {
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

die() {
    echo "azurite.sh: $*" >&2
    exit 1
}

command="${1:-}"
[[ -n "$command" ]] || usage
shift

mode=memory
disk_dir=""
blob_port=10000
queue_port=""
table_port=""
owner_pid=""
while (($#)); do
    case "$1" in
        --memory) mode=memory; shift ;;
        --disk) [[ $# -ge 2 ]] || die "--disk needs a directory"; mode=disk; disk_dir="$2"; shift 2 ;;
        --blob-port) [[ $# -ge 2 ]] || die "--blob-port needs a number"; blob_port="$2"; shift 2 ;;
        --queue-port) [[ $# -ge 2 ]] || die "--queue-port needs a number"; queue_port="$2"; shift 2 ;;
        --table-port) [[ $# -ge 2 ]] || die "--table-port needs a number"; table_port="$2"; shift 2 ;;
        --owner-pid) [[ $# -ge 2 ]] || die "--owner-pid needs a pid"; owner_pid="$2"; shift 2 ;;
        -h|--help) usage ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
pid_file="$state_dir/azurite-$blob_port.pid"
watch_file="$state_dir/azurite-$blob_port.watch.pid"
ports_file="$state_dir/azurite-$blob_port.ports"
log_file="$state_dir/azurite-$blob_port.log"

# stop/status name an instance by its blob port alone; recall the other two from its start.
if [[ "$command" != start && -z "$queue_port$table_port" && -f "$ports_file" ]]; then
    read -r queue_port table_port <"$ports_file" || true
fi
# Unspecified queue/table ports follow the blob port, so `--blob-port 20000` alone gives
# 20000/20001/20002 rather than clashing with a default instance on 10001/10002.
queue_port="${queue_port:-$((blob_port + 1))}"
table_port="${table_port:-$((blob_port + 2))}"
for p in "$blob_port" "$queue_port" "$table_port"; do
    [[ "$p" =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || die "'$p' is not a port number"
done
[[ -z "$owner_pid" || "$owner_pid" =~ ^[0-9]+$ ]] || die "'$owner_pid' is not a pid"

port_open() {
    # bash's /dev/tcp needs no extra tools; the subshell closes the socket at once.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The pid in the pid file, if that process is still an Azurite (guards against pid reuse).
running_pid() {
    [[ -f "$pid_file" ]] || return 1
    local pid
    pid="$(cat "$pid_file" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    ps -p "$pid" -o args= 2>/dev/null | grep -q azurite || return 1
    echo "$pid"
}

print_endpoints() {
    local pid="$1"
    echo "Azurite running (pid $pid, log $log_file)"
    echo "  blob   http://127.0.0.1:$blob_port/$account"
    echo "  queue  http://127.0.0.1:$queue_port/$account"
    echo "  table  http://127.0.0.1:$table_port/$account"
    echo "  AzureWebJobsStorage=DefaultEndpointsProtocol=http;AccountName=$account;AccountKey=$key;BlobEndpoint=http://127.0.0.1:$blob_port/$account;QueueEndpoint=http://127.0.0.1:$queue_port/$account;TableEndpoint=http://127.0.0.1:$table_port/$account;"
}

# npm ci when node_modules is missing or older than the lockfile. Serialised with flock, since
# tests running in parallel may all call `start` at once.
ensure_installed() {
    local bin="$root/node_modules/.bin/azurite"
    local marker="$root/node_modules/.package-lock.json"
    if [[ -x "$bin" && -f "$marker" && ! "$root/package-lock.json" -nt "$marker" ]]; then
        return 0
    fi
    command -v npm >/dev/null || die "npm is not installed; Azurite needs Node 20 and npm"
    exec 9>"$state_dir/install.lock"
    if command -v flock >/dev/null; then flock 9; fi
    if [[ -x "$bin" && -f "$marker" && ! "$root/package-lock.json" -nt "$marker" ]]; then
        exec 9>&-
        return 0
    fi
    echo "azurite.sh: installing Azurite from package-lock.json (npm ci)" >&2
    (cd "$root" && npm ci --no-audit --no-fund >&2) || die "npm ci failed"
    exec 9>&-
}

start() {
    mkdir -p "$state_dir"
    local pid
    if pid="$(running_pid)"; then
        if port_open "$blob_port" && port_open "$queue_port" && port_open "$table_port"; then
            print_endpoints "$pid"
            return 0
        fi
        die "Azurite pid $pid from $pid_file is alive but its ports $blob_port/$queue_port/$table_port are not all open; run '$0 stop --blob-port $blob_port' first"
    fi
    rm -f "$pid_file" "$watch_file"
    for p in "$blob_port" "$queue_port" "$table_port"; do
        ! port_open "$p" || die "port $p is already in use by another process"
    done
    ensure_installed

    # --skipApiVersionCheck: an Azurite knows only the storage API versions out when it was
    # released, and current SDKs and Storage Explorer send newer ones (azure-storage-queue
    # 12.18 sends 2026-10-06, which Azurite 3.37 refuses without it). No --loose: requests
    # stay checked otherwise. --disableTelemetry keeps test runs from calling home.
    local args=(
        --blobHost 127.0.0.1 --blobPort "$blob_port"
        --queueHost 127.0.0.1 --queuePort "$queue_port"
        --tableHost 127.0.0.1 --tablePort "$table_port"
        --skipApiVersionCheck
        --disableTelemetry
    )
    if [[ "${AZURITE_ACCESS_LOG:-0}" != 1 ]]; then
        args+=(--silent)
    fi
    if [[ "$mode" == memory ]]; then
        args+=(--inMemoryPersistence)
    else
        mkdir -p "$disk_dir"
        args+=(--location "$(cd "$disk_dir" && pwd)")
    fi

    # Runs from .azurite/ so nothing Azurite writes lands in the repo root; all descriptors are
    # redirected so a caller reading this script's output is not held open by Azurite.
    (cd "$state_dir" && exec "$root/node_modules/.bin/azurite" "${args[@]}") \
        </dev/null >"$log_file" 2>&1 &
    pid=$!
    echo "$pid" >"$pid_file"
    echo "$queue_port $table_port" >"$ports_file"

    local timeout="${AZURITE_START_TIMEOUT:-30}"
    local deadline=$((SECONDS + timeout))
    until port_open "$blob_port" && port_open "$queue_port" && port_open "$table_port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pid_file"
            echo "azurite.sh: Azurite exited during start-up; last lines of $log_file:" >&2
            tail -n 20 "$log_file" >&2 || true
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            kill "$pid" 2>/dev/null || true
            rm -f "$pid_file"
            echo "azurite.sh: Azurite did not open ports $blob_port/$queue_port/$table_port within ${timeout}s; last lines of $log_file:" >&2
            tail -n 20 "$log_file" >&2 || true
            exit 1
        fi
        sleep 0.1
    done

    if [[ -n "$owner_pid" ]]; then
        (
            while kill -0 "$owner_pid" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 1; done
            kill "$pid" 2>/dev/null || true
            # An instance killed and started again on the same ports has a new pid and watch:
            # their files are not this watch's to remove.
            if [[ "$(cat "$pid_file" 2>/dev/null || true)" == "$pid" ]]; then
                rm -f "$pid_file" "$ports_file" "$watch_file"
            fi
        ) </dev/null >/dev/null 2>&1 &
        echo $! >"$watch_file"
    fi
    print_endpoints "$pid"
}

stop() {
    local pid
    if [[ -f "$watch_file" ]]; then
        local watcher
        watcher="$(cat "$watch_file" 2>/dev/null || true)"
        [[ "$watcher" =~ ^[0-9]+$ ]] && kill "$watcher" 2>/dev/null || true
        rm -f "$watch_file"
    fi
    if ! pid="$(running_pid)"; then
        rm -f "$pid_file" "$ports_file"
        echo "Azurite on blob port $blob_port is not running"
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    rm -f "$pid_file" "$ports_file"
    echo "Azurite (pid $pid) stopped"
}

status() {
    local pid
    if pid="$(running_pid)"; then
        print_endpoints "$pid"
    else
        echo "Azurite on blob port $blob_port is not running"
        exit 3
    fi
}

case "$command" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
