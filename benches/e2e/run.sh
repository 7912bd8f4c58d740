#!/usr/bin/env bash
# The end-to-end benchmark: uploads SIZE bytes (1 GiB by default) over
# loopback to the example upload server and to a bare hyper baseline, with
# the same client and the same request patterns, and prints one markdown
# table of medians and ratios.
#
#   bash benches/e2e/run.sh
#
# Measured, ROUNDS times, alternating baseline and upload server (A B A B):
#   - REST: 4 parallel chunk PUTs of CHUNK bytes, then `complete` (timed on
#     its own), against `bench_baseline` writing each chunk to its own file;
#   - tus: creation, then sequential PATCHes of CHUNK bytes, against
#     `bench_baseline` writing them into one file at the given offset;
#   - `complete` of chunks sent in reverse order (out of order);
#   - hyper reading and discarding the same bodies (the loopback ceiling);
#   - a plain copy of a SIZE file (`dd bs=1M conv=fsync`, read + write +
#     fsync): what `complete` is compared with;
#   - with PEERS=1, the tus pattern against rustus (crates.io) as it comes
#     (no fsync), rustus with --force-fsync true (durable like the upload
#     server and the baseline), and @tus/server with @tus/file-store (npm; it
#     has no fsync option), in the same rounds.
# Then, once each, the chunk-size sweep (SWEEP_CHUNKS, MiB) for the plot, and
# with RSS_SIZE (e.g. 8GiB) one run of each dialect at that size to show
# whether the server's peak RSS stays flat.
#
# Every server gets a fresh data directory under BENCH_DIR and is stopped
# after its run, so its peak RSS (VmHWM) and CPU time are that run's.
#
# Settings (environment):
#   SIZE=1GiB ROUNDS=5 CHUNK=8MiB PARALLEL=4
#   PEERS=0          1: also rustus and @tus/server (built/installed once, cached
#                    under PEERS_DIR=$HOME/.cache/resumable-peers and
#                    benches/e2e/peers/node_modules)
#   SWEEP=1          0: skip the chunk-size sweep and the plot
#   SWEEP_CHUNKS="1 4 8 16 32"   SWEEP_SIZE=$SIZE
#   RSS_SIZE=        e.g. 8GiB: the flatness check of the server's peak RSS
#   BASELINE_IO=thread   (thread | tokio, see examples/bench_baseline.rs)
#   BASELINE_FSYNC=1     0: the baseline answers without fsync
#   BENCH_DIR=$HOME/.cache/resumable-bench   (data directories; the same
#                    filesystem as $HOME, here ext4 on a virtio disk)
#   RUN_TIMEOUT=900  seconds one upload may take
#   IDLE_LOAD=0.5 IDLE_WAIT=300  before the first run, wait up to IDLE_WAIT
#                    seconds for the 1-minute load average to fall to IDLE_LOAD
#
# Results: benches/e2e/results/<time>.jsonl (one JSON line per run, not
# committed), <time>.md and summary.md (the table), and
# benches/e2e/throughput-vs-chunk-size.png (python3 + matplotlib, in a venv
# under ~/.cache/resumable-bench-venv, installed from PyPI on first use).
#
# Needs cargo, python3, dd, timeout; with PEERS=1 also node >= 20.19 and npm.
# Servers listen on free ports of 127.0.0.1 only and are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
here=$repo/benches/e2e
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/resumable-target}

bytes_of() {
  local v=$1 n unit
  n=${v%%[!0-9]*}
  unit=${v#"$n"}
  [ -n "$n" ] || { echo "not a size: $v" >&2; return 1; }
  case $unit in
    "" | B) echo "$n" ;;
    K | KiB) echo $((n << 10)) ;;
    M | MiB) echo $((n << 20)) ;;
    G | GiB) echo $((n << 30)) ;;
    *) echo "unknown unit in $v" >&2; return 1 ;;
  esac
}

SIZE=$(bytes_of "${SIZE:-1GiB}")
ROUNDS=${ROUNDS:-5}
CHUNK=$(bytes_of "${CHUNK:-8MiB}")
PARALLEL=${PARALLEL:-4}
PEERS=${PEERS:-0}
SWEEP=${SWEEP:-1}
SWEEP_CHUNKS=${SWEEP_CHUNKS:-"1 4 8 16 32"}
SWEEP_SIZE=$(bytes_of "${SWEEP_SIZE:-$SIZE}")
RSS_SIZE=${RSS_SIZE:+$(bytes_of "$RSS_SIZE")}
BASELINE_IO=${BASELINE_IO:-thread}
BASELINE_FSYNC=${BASELINE_FSYNC:-1}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/resumable-bench}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
IDLE_LOAD=${IDLE_LOAD:-0.5}
IDLE_WAIT=${IDLE_WAIT:-300}
PEERS_DIR=${PEERS_DIR:-$HOME/.cache/resumable-peers}
VENV=${VENV:-$HOME/.cache/resumable-bench-venv}
RUSTUS_VERSION=0.5.10

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$BENCH_DIR" "$here/results"
work=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
raw=$here/results/$stamp.jsonl
: > "$raw"
bin=$CARGO_TARGET_DIR/release/examples

SRV_PID=""
cleanup() {
  if [ -n "$SRV_PID" ]; then
    kill -TERM "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "[e2e] $*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }
now() { date +%s.%N; }

# Disk: the upload, its assembled copy, the copy baseline's source and copy.
largest=$SIZE
for s in "$SWEEP_SIZE" "${RSS_SIZE:-0}"; do [ "$s" -gt "$largest" ] && largest=$s; done
need=$((2 * largest + 2 * SIZE + (1 << 30)))
free=$(($(df --output=avail -B1 "$BENCH_DIR" | tail -n 1)))
if [ "$free" -lt "$need" ]; then
  say "not enough space under $BENCH_DIR: $free bytes free, $need needed"
  exit 1
fi

say "building the release examples (server, bench_baseline, bench_client)"
cargo build --release --quiet --example server --example bench_baseline --example bench_client

# ---- peers (PEERS=1) --------------------------------------------------------
rustus_bin=""
node_ok=0
if [ "$PEERS" = 1 ]; then
  if [ ! -x "$PEERS_DIR/bin/rustus" ]; then
    say "building rustus $RUSTUS_VERSION from crates.io into $PEERS_DIR (once; several minutes)"
    mkdir -p "$PEERS_DIR"
    if ! CARGO_TARGET_DIR=$PEERS_DIR/target timeout 3600 cargo install rustus \
      --version "$RUSTUS_VERSION" --locked --root "$PEERS_DIR" > "$PEERS_DIR/install.log" 2>&1; then
      say "rustus did not build (see $PEERS_DIR/install.log); it is left out"
    fi
  fi
  [ -x "$PEERS_DIR/bin/rustus" ] && rustus_bin=$PEERS_DIR/bin/rustus
  if command -v node > /dev/null && command -v npm > /dev/null &&
    node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)'; then
    if [ ! -d "$here/peers/node_modules/@tus/server" ]; then
      say "installing @tus/server and @tus/file-store (npm ci)"
      (cd "$here/peers" && timeout 600 npm ci --no-audit --no-fund > /dev/null 2>&1) ||
        say "npm ci failed in benches/e2e/peers; @tus/server is left out"
    fi
    [ -d "$here/peers/node_modules/@tus/server" ] && node_ok=1
  else
    say "node >= 20.19 and npm are needed for @tus/server; it is left out"
  fi
fi

# ---- servers -------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server KIND DATA_DIR LOG CHUNK: sets SRV_PID and SRV_ADDR.
start_server() {
  local kind=$1 data=$2 log=$3 chunk=$4 port="" fsync=()
  [ "$BASELINE_FSYNC" = 1 ] || fsync=(--no-fsync)
  mkdir -p "$data"
  : > "$log"
  case $kind in
    resumable)
      "$bin/server" --addr 127.0.0.1:0 --data-dir "$data" --chunk-size "$chunk" > "$log" 2>&1 & ;;
    baseline)
      "$bin/bench_baseline" --addr 127.0.0.1:0 --data-dir "$data" --io "$BASELINE_IO" "${fsync[@]}" > "$log" 2>&1 & ;;
    discard)
      "$bin/bench_baseline" --addr 127.0.0.1:0 --data-dir "$data" --io discard > "$log" 2>&1 & ;;
    tus-node)
      node "$here/peers/tus-node-server.mjs" 0 "$data" > "$log" 2>&1 & ;;
    rustus | rustus-fsync)
      local durable=()
      [ "$kind" = rustus-fsync ] && durable=(--force-fsync true)
      port=$(free_port)
      # Its default body limit (256 KiB) would refuse the PATCHes; it reads
      # a whole body into memory, so the limit is the request size.
      "$rustus_bin" --host 127.0.0.1 --port "$port" --url /files --data-dir "$data" \
        --info-dir "$data" --log-level WARN --max-body-size "$chunk" "${durable[@]}" > "$log" 2>&1 & ;;
    *) say "unknown server $kind"; return 1 ;;
  esac
  SRV_PID=$!
  SRV_ADDR=""
  for _ in $(seq 1 300); do
    if [ -n "$port" ]; then
      (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null && SRV_ADDR=127.0.0.1:$port
    else
      SRV_ADDR=$(sed -n 's/.*listening addr=\([0-9.:]*\).*/\1/p' "$log" | head -n 1 || true)
    fi
    [ -n "$SRV_ADDR" ] && return 0
    kill -0 "$SRV_PID" 2> /dev/null || break
    sleep 0.1
  done
  say "$kind did not start:"
  cat "$log" >&2
  return 1
}

stop_server() {
  kill -TERM "$SRV_PID" 2> /dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$SRV_PID" 2> /dev/null || break
    sleep 0.1
  done
  kill -KILL "$SRV_PID" 2> /dev/null || true
  wait "$SRV_PID" 2> /dev/null || true
  SRV_PID=""
}

# The server's peak RSS (KiB) and CPU seconds so far (Linux ticks of 1/100 s).
server_hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SRV_PID/status"; }
server_cpu() { sed 's/.*) //' "/proc/$SRV_PID/stat" | awk '{printf "%.2f", ($12 + $13) / 100}'; }

# run_one PHASE ROUND KIND DIALECT CHUNK SIZE [client flags...]: one upload to
# a fresh server; appends its JSON line (with the server's figures) to $raw.
n_run=0
run_one() {
  local phase=$1 round=$2 kind=$3 dialect=$4 chunk=$5 size=$6
  shift 6
  n_run=$((n_run + 1))
  local data=$work/data.$n_run log=$work/server.$n_run.log server=$kind
  case $kind in rustus | rustus-fsync | tus-node) server=peer ;; discard) server=baseline ;; esac
  local load
  load=$(load1)
  start_server "$kind" "$data" "$log" "$chunk"
  local line
  if ! line=$(timeout "$RUN_TIMEOUT" "$bin/bench_client" --url "http://$SRV_ADDR" \
    --server "$server" --dialect "$dialect" --size "$size" --chunk-size "$chunk" \
    --parallel "$PARALLEL" --label "$kind" "$@"); then
    say "run $n_run ($phase $kind $dialect) failed; server log:"
    tail -n 20 "$log" >&2
    stop_server
    return 1
  fi
  local hwm cpu
  hwm=$(server_hwm)
  cpu=$(server_cpu)
  stop_server
  rm -rf "$data"
  sync
  line="${line%\}},\"phase\":\"$phase\",\"round\":$round,\"server_peak_rss_kib\":$hwm,\"server_cpu_seconds\":$cpu,\"load1\":$load}"
  echo "$line" >> "$raw"
  say "$(printf '%-7s r%s %-9s %-4s %4s MiB %6.0f MB/s  rss %6s KiB' "$phase" "$round" "$kind" "$dialect" \
    $((chunk >> 20)) "$(sed 's/.*"mb_s":\([0-9.]*\).*/\1/' <<< "$line")" "$hwm")"
}

# The copy `complete` is compared with: read + write with a 1 MiB buffer +
# fsync, of a file already in the page cache (as the chunks are).
copy_src=$work/copy.src
copy_once() {
  local round=$1 t0 t1 load
  load=$(load1)
  t0=$(now)
  dd if="$copy_src" of="$work/copy.dst" bs=1M conv=fsync status=none
  t1=$(now)
  rm -f "$work/copy.dst"
  sync
  echo "{\"pattern\":\"copy\",\"target\":\"dd\",\"bytes\":$SIZE,\"seconds\":$(awk "BEGIN{print $t1-$t0}"),\"phase\":\"main\",\"round\":$round,\"load1\":$load}" >> "$raw"
  say "$(printf 'copy    r%s dd bs=1M conv=fsync %.3f s' "$round" "$(awk "BEGIN{print $t1-$t0}")")"
}

# ---- the machine -----------------------------------------------------------------
# Other work on the two cores would skew every figure: wait (bounded by
# IDLE_WAIT seconds) for the 1-minute load average to fall to IDLE_LOAD.
waited=0
until awk -v l="$(load1)" -v max="$IDLE_LOAD" 'BEGIN { exit !(l <= max) }' || [ "$waited" -ge "$IDLE_WAIT" ]; do
  [ "$waited" = 0 ] && say "waiting up to ${IDLE_WAIT}s for the load average ($(load1)) to fall to $IDLE_LOAD"
  sleep 5
  waited=$((waited + 5))
done
machine=$here/results/$stamp.machine
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2> /dev/null || echo unknown)"
  echo "cpu: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
  echo "memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "kernel: $(uname -r); $(rustc --version)"
  echo "data dir: $BENCH_DIR ($(findmnt -n -o FSTYPE,SOURCE,OPTIONS --target "$BENCH_DIR" 2> /dev/null || df -T "$BENCH_DIR" | tail -n 1))"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: SIZE=$SIZE ROUNDS=$ROUNDS CHUNK=$CHUNK PARALLEL=$PARALLEL PEERS=$PEERS BASELINE_IO=$BASELINE_IO BASELINE_FSYNC=$BASELINE_FSYNC"
  [ "$PEERS" = 1 ] && echo "peers: rustus $([ -n "$rustus_bin" ] && echo "$RUSTUS_VERSION" || echo unavailable); @tus/server $([ "$node_ok" = 1 ] && node -p 'require("'"$here"'/peers/node_modules/@tus/server/package.json").version' || echo unavailable) on node $(node --version 2> /dev/null || echo -)"
} > "$machine"
cat "$machine" >&2

say "making the $SIZE-byte source of the copy baseline"
head -c "$SIZE" /dev/urandom > "$copy_src"

# ---- main rounds -----------------------------------------------------------------
for r in $(seq 1 "$ROUNDS"); do
  run_one main "$r" baseline rest "$CHUNK" "$SIZE"
  run_one main "$r" resumable rest "$CHUNK" "$SIZE"
  run_one main "$r" baseline tus "$CHUNK" "$SIZE"
  run_one main "$r" resumable tus "$CHUNK" "$SIZE"
  if [ -n "$rustus_bin" ]; then
    run_one main "$r" rustus tus "$CHUNK" "$SIZE" --tus-path /files/
    run_one main "$r" rustus-fsync tus "$CHUNK" "$SIZE" --tus-path /files/
  fi
  if [ "$node_ok" = 1 ]; then run_one main "$r" tus-node tus "$CHUNK" "$SIZE"; fi
  run_one reverse "$r" resumable rest "$CHUNK" "$SIZE" --order reverse
  copy_once "$r"
  run_one main "$r" discard rest "$CHUNK" "$SIZE"
  run_one main "$r" discard tus "$CHUNK" "$SIZE"
done
rm -f "$copy_src"

# ---- chunk-size sweep --------------------------------------------------------------
if [ "$SWEEP" = 1 ]; then
  for mib in $SWEEP_CHUNKS; do
    c=$((mib << 20))
    run_one sweep 1 baseline rest "$c" "$SWEEP_SIZE"
    run_one sweep 1 resumable rest "$c" "$SWEEP_SIZE"
    run_one sweep 1 baseline tus "$c" "$SWEEP_SIZE"
    run_one sweep 1 resumable tus "$c" "$SWEEP_SIZE"
  done
fi

# ---- peak RSS at a larger size -------------------------------------------------
if [ -n "$RSS_SIZE" ]; then
  run_one rss 1 resumable rest "$CHUNK" "$RSS_SIZE"
  run_one rss 1 resumable tus "$CHUNK" "$RSS_SIZE"
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$machine"

# ---- report ------------------------------------------------------------------------
python=python3
if [ "$SWEEP" = 1 ]; then
  if ! "$VENV/bin/python" -c 'import matplotlib' 2> /dev/null; then
    say "installing matplotlib into $VENV"
    { python3 -m venv "$VENV" && timeout 600 "$VENV/bin/pip" install --quiet matplotlib; } > /dev/null 2>&1 ||
      say "could not install matplotlib; no plot"
  fi
  "$VENV/bin/python" -c 'import matplotlib' 2> /dev/null && python=$VENV/bin/python
fi
plot=()
[ "$SWEEP" = 1 ] && plot=(--plot "$here/throughput-vs-chunk-size.png")
"$python" "$here/report.py" "$raw" --machine "$machine" "${plot[@]}" > "$here/results/$stamp.md"
cp "$here/results/$stamp.md" "$here/results/summary.md"
cat "$here/results/$stamp.md"
say "raw results: $raw; table: benches/e2e/results/summary.md"
