#!/usr/bin/env bash
# Where the upload server's time goes, for both dialects, next to the bare
# hyper baseline: each server runs under `perf record` (software clock
# sampling, so it works in a VM without hardware counters) for one upload of
# PROFILE_SIZE bytes with the same client and pattern as benches/e2e/run.sh,
# then under `strace -f -c -w` (syscall counts and wall time) for a smaller
# upload. Measurement only: nothing is changed.
#
#   bash benches/e2e/profile.sh
#
# Settings (environment): PROFILE_SIZE=256MiB STRACE_SIZE=64MiB CHUNK=8MiB
#   PARALLEL=4 FREQ=1999 (samples per second)
#   BENCH_DIR=$HOME/.cache/resumable-bench
#   OUT=benches/e2e/results/profile-<time>  (reports; not committed)
# Needs perf (Debian: linux-perf) and strace; where `perf` cannot sample,
# valgrind --tool=callgrind is used instead on a 64 MiB upload (slow).
#
# Output: for each server and dialect, the top symbols by self time
# (perf report) and a breakdown into SHA-256, copying, kernel networking,
# kernel file writing, allocation, runtime and the rest (classify.py), and
# the syscall table.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$PWD/benches/e2e
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/resumable-target}
PROFILE_SIZE=${PROFILE_SIZE:-256MiB}
STRACE_SIZE=${STRACE_SIZE:-64MiB}
CHUNK=${CHUNK:-8MiB}
PARALLEL=${PARALLEL:-4}
FREQ=${FREQ:-1999}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/resumable-bench}
OUT=${OUT:-$here/results/profile-$(date -u +%Y%m%dT%H%M%SZ)}
bin=$CARGO_TARGET_DIR/release/examples
bytes_of() {
  local v=$1 n unit
  n=${v%%[!0-9]*}
  unit=${v#"$n"}
  case $unit in
    "" | B) echo "$n" ;;
    K | KiB) echo $((n << 10)) ;;
    M | MiB) echo $((n << 20)) ;;
    G | GiB) echo $((n << 30)) ;;
    *) echo "unknown unit in $v" >&2; return 1 ;;
  esac
}
CHUNK=$(bytes_of "$CHUNK")
mkdir -p "$BENCH_DIR" "$OUT"
work=$(mktemp -d "$BENCH_DIR/profile.XXXXXX")

TOOL_PID=""
# Stops the profiled server: the child of perf or strace, or valgrind's own
# process (valgrind runs the program in place). The tool then writes its data.
stop_tool() {
  local children
  children=$(cat /proc/"$TOOL_PID"/task/*/children 2> /dev/null || true)
  if [ -n "$children" ]; then
    # shellcheck disable=SC2086
    kill -TERM $children 2> /dev/null || true
  else
    kill -TERM "$TOOL_PID" 2> /dev/null || true
  fi
  for _ in $(seq 1 300); do
    kill -0 "$TOOL_PID" 2> /dev/null || break
    sleep 0.1
  done
  kill -TERM "$TOOL_PID" 2> /dev/null || true
  wait "$TOOL_PID" 2> /dev/null || true
  TOOL_PID=""
}
cleanup() {
  [ -z "$TOOL_PID" ] || stop_tool
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "[profile] $*" >&2; }

cargo build --release --quiet --example server --example bench_baseline --example bench_client

mode=perf
if ! perf record -e cpu-clock -o "$work/probe.data" -- true > /dev/null 2>&1; then
  command -v valgrind > /dev/null || { say "neither perf nor valgrind can run here"; exit 1; }
  mode=callgrind
  PROFILE_SIZE=64MiB
  say "perf cannot sample here; using valgrind --tool=callgrind on $PROFILE_SIZE (slow)"
fi

# under TOOL NAME KIND DIALECT SIZE [client flags]: one upload to KIND
# (resumable | baseline) running under TOOL (perf | callgrind | strace).
under() {
  local tool=$1 name=$2 kind=$3 dialect=$4 size=$5
  shift 5
  local data=$work/data.$name.$tool log=$work/$name.$tool.log server=()
  case $kind in
    resumable) server=("$bin/server" --addr 127.0.0.1:0 --data-dir "$data" --chunk-size "$CHUNK") ;;
    baseline) server=("$bin/bench_baseline" --addr 127.0.0.1:0 --data-dir "$data") ;;
  esac
  : > "$log"
  case $tool in
    perf) perf record -e cpu-clock -F "$FREQ" -o "$OUT/$name.perf.data" -- "${server[@]}" > "$log" 2>&1 & ;;
    callgrind) valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.callgrind.out" -- "${server[@]}" > "$log" 2>&1 & ;;
    strace) strace -f -c -w -o "$OUT/$name.strace.txt" -- "${server[@]}" > "$log" 2>&1 & ;;
  esac
  TOOL_PID=$!
  local addr=""
  for _ in $(seq 1 600); do
    addr=$(sed -n 's/.*listening addr=\([0-9.:]*\).*/\1/p' "$log" | head -n 1 || true)
    [ -n "$addr" ] && break
    kill -0 "$TOOL_PID" 2> /dev/null || break
    sleep 0.1
  done
  [ -n "$addr" ] || { say "$name did not start under $tool"; cat "$log" >&2; exit 1; }
  timeout 1800 "$bin/bench_client" --url "http://$addr" --server "$kind" --dialect "$dialect" \
    --size "$size" --chunk-size "$CHUNK" --parallel "$PARALLEL" --label "$name" "$@" \
    | tee -a "$OUT/client.jsonl" >&2
  stop_tool
  rm -rf "$data"
}

size_bytes=$(bytes_of "$PROFILE_SIZE")
# resumable-rest-upload: the chunk PUTs alone (no complete), so that
# resumable-rest minus it is what `complete` costs.
for spec in "resumable-rest resumable rest" "resumable-rest-upload resumable rest --skip-complete" \
  "resumable-tus resumable tus" "baseline-rest baseline rest" "baseline-tus baseline tus"; do
  # shellcheck disable=SC2086
  set -- $spec
  say "$1: $mode, $PROFILE_SIZE"
  under "$mode" "$1" "$2" "$3" "$PROFILE_SIZE" "${@:4}"
  if [ "$mode" = perf ]; then
    perf report -i "$OUT/$1.perf.data" --no-children --sort dso,symbol --stdio > "$work/report" 2> /dev/null
    grep -v -e '^#' -e '^$' "$work/report" | sed -n 1,40p > "$OUT/$1.top.txt"
    perf report -i "$OUT/$1.perf.data" --no-children --sort symbol --stdio -n > "$work/report" 2> /dev/null
    python3 "$here/classify.py" --freq "$FREQ" --bytes "$size_bytes" < "$work/report" > "$OUT/$1.breakdown.txt"
  else
    callgrind_annotate "$OUT/$1.callgrind.out" > "$work/report" 2> /dev/null
    sed -n 1,60p "$work/report" > "$OUT/$1.top.txt"
    python3 "$here/classify.py" --callgrind < "$work/report" > "$OUT/$1.breakdown.txt"
  fi
done

if command -v strace > /dev/null; then
  for spec in "resumable-rest resumable rest" "resumable-tus resumable tus" \
    "baseline-rest baseline rest" "baseline-tus baseline tus"; do
    # shellcheck disable=SC2086
    set -- $spec
    say "$1: strace, $STRACE_SIZE"
    under strace "$1" "$2" "$3" "$STRACE_SIZE"
  done
fi

for f in "$OUT"/*.breakdown.txt; do
  echo "== $(basename "$f" .breakdown.txt) (perf self time, share of the server's CPU samples)"
  cat "$f"
  echo
done
for f in "$OUT"/*.strace.txt; do
  [ -f "$f" ] || continue
  echo "== $(basename "$f" .strace.txt): syscalls (strace -f -c -w: wall time inside each call)"
  sed -n 1,16p "$f"
  echo
done
say "reports in $OUT"
