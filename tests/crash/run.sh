#!/usr/bin/env bash
# Crash test: the example server (filesystem store and sink) is killed with
# SIGKILL again and again while a client uploads 512 MiB through the session
# REST API, and restarted each time on the same data directory (on a new
# free port of 127.0.0.1, which the client rereads from a file).
#
#   1. A second session is initiated and given two chunks, then abandoned.
#   2. The client (tests/crash/drive.py) initiates once and sends 128 chunks
#      of 4 MiB, shuffled, 4 at a time, each body paced so that kills find
#      requests in flight; it is held back between batches until the runner
#      has killed the server CRASH_KILLS times (default 20), so that many
#      kills happen while chunks are still missing. After each failure it
#      reads the status and resends what the status does not list.
#   3. The runner sleeps 0.2-1.5 s, kills the server (kill -9 by pid),
#      restarts it, and again, CRASH_KILLS times; then lets the client
#      complete.
#   4. Checks: no acknowledged chunk was ever missing after a restart; the
#      completed SHA-256 and the stored blob equal the source; blob.json
#      agrees; no server panicked. Then a last server with short expiry,
#      sweep interval and tombstone retention runs until the data directory
#      holds nothing but the finished upload (its blob, blob.json and session
#      record) and the lock files, or fails with what else remains.
#
#   bash tests/crash/run.sh      (CRASH_KILLS=N, CRASH_SEED=N to vary)
set -euo pipefail
cd "$(dirname "$0")/../.."

kills_wanted=${CRASH_KILLS:-20}
seed=${CRASH_SEED:-$((RANDOM * 32768 + RANDOM))}
export CRASH_KILLS=$kills_wanted CRASH_SEED=$seed
RANDOM=$seed
chunk_size=$((4 * 1024 * 1024))
size=$((512 * 1024 * 1024))

work=$(mktemp -d)
data="$work/data"
control="$work/control"
mkdir -p "$data" "$control"
server_pid=""
client_pid=""
cleanup() {
  [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "${CRASH_KEEP:-}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

started=$(date +%s)
cargo build --quiet --release --example server
bin="${CARGO_TARGET_DIR:-target}/release/examples/server"

source_file="$work/source.bin"
head -c "$size" /dev/urandom > "$source_file"
source_sha=$(sha256sum "$source_file" | cut -d' ' -f1)

passed=0
failed=0
verdict() {
  if [ "$1" = ok ]; then echo "ok   $2"; passed=$((passed + 1)); else echo "FAIL $2"; failed=$((failed + 1)); fi
}

# start_server LOG [flags...]: a server on a free port of 127.0.0.1 on the
# data directory; sets server_pid and writes its base URL to control/url.
restarts=0
start_server() {
  local log=$1
  shift
  : > "$log"
  "$bin" --addr 127.0.0.1:0 --data-dir "$data" --chunk-size "$chunk_size" "$@" > "$log" 2>&1 &
  server_pid=$!
  local addr=""
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*listening addr=\([0-9.:]*\).*/\1/p' "$log" | head -n 1 || true)
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$addr" ]; then
    echo "the server did not start:" >&2
    cat "$log" >&2
    exit 1
  fi
  echo "http://$addr" > "$control/url.new"
  mv "$control/url.new" "$control/url"
}
kill_server() {
  kill -9 "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}
# Sessions expire after 30 s without a chunk, and their records are
# forgotten 1 s after the purge, so the abandoned session is reaped while the
# server is being killed (or by the last server).
crash_flags=(--expiry 30 --sweep-interval 1 --tombstone-retention 1)

start_server "$work/server.0.log" "${crash_flags[@]}"
abandoned=$(python3 tests/crash/drive.py abandon "$control" "$source_file" \
  | python3 -c "import json,sys; print(json.load(sys.stdin)['sessionId'])")

python3 tests/crash/drive.py upload "$control" "$source_file" > "$work/client.json" 2> "$work/client.log" &
client_pid=$!

# The kills start once the client holds its session: a kill between the
# sink's begin and the record's creation leaves an empty upload directory
# that no record names and no sweep removes, a window this test leaves out.
for _ in $(seq 1 600); do
  [ -s "$control/session" ] && break
  kill -0 "$client_pid" 2>/dev/null || break
  sleep 0.05
done
[ -s "$control/session" ] || { echo "the client did not initiate:"; cat "$work/client.log"; exit 1; }
session=$(cat "$control/session")
upload_started=$(date +%s.%N)

kills=0
kills_mid=0
echo 0 > "$control/kills"
deadline=$((SECONDS + 480))
while [ "$kills_mid" -lt "$kills_wanted" ] && [ "$SECONDS" -lt "$deadline" ]; do
  sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", 0.2 + 1.3 * r / 32767 }')"
  kill -0 "$client_pid" 2>/dev/null || break
  read -r have total _ 2>/dev/null < "$control/progress" || { have=0; total=1; }
  kill_server
  kills=$((kills + 1))
  # Session records whose write the kill cut short (the sweep removes them).
  (cd "$data/store/sessions" && ls -A | grep -E '^\.' >> "$work/cut-records" || true)
  # Mid-upload: the client runs and still misses chunks (it cannot complete
  # before kills-done).
  if kill -0 "$client_pid" 2>/dev/null && [ "$have" -lt "$total" ]; then kills_mid=$((kills_mid + 1)); fi
  echo "$kills" > "$control/kills.new"
  mv "$control/kills.new" "$control/kills"
  restarts=$((restarts + 1))
  start_server "$work/server.$restarts.log" "${crash_flags[@]}"
done
touch "$control/kills-done"

client_ok=yes
wait "$client_pid" || client_ok=""
client_pid=""
upload_seconds=$(awk -v a="$upload_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
out=$(cat "$work/client.json")
if [ -n "$client_ok" ] && [ -n "$out" ]; then
  verdict ok "the client completed the upload through $kills kill(s) ($upload_seconds s)"
else
  verdict fail "the client failed:"
  tail -n 20 "$work/client.log"
  out='{}'
fi
echo "  client: $out"
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read()).get('$1', ''))" <<< "$out"; }

[ "$kills_mid" -ge "$kills_wanted" ] && verdict ok "$kills_mid kill(s) while the upload was in progress (wanted $kills_wanted)" \
  || verdict fail "only $kills_mid kill(s) while the upload was in progress (wanted $kills_wanted)"
[ "$(field ackedLost)" = "[]" ] && verdict ok "no acknowledged chunk was missing after any restart" \
  || verdict fail "acknowledged chunk(s) missing after a restart: $(field ackedLost)"
completed_sha=$(field sha256)
[ "$completed_sha" = "$source_sha" ] && verdict ok "the completed SHA-256 equals the source's" \
  || verdict fail "the completed SHA-256 ($completed_sha) differs from the source's ($source_sha)"

upload_dir="$data/blobs/uploads/$session"
blob="$upload_dir/blob"
blob_sha=$( [ -f "$blob" ] && sha256sum "$blob" | cut -d' ' -f1 || echo missing)
[ "$blob_sha" = "$source_sha" ] && verdict ok "the stored blob equals the source (sha256sum)" \
  || verdict fail "the stored blob ($blob_sha) differs from the source ($source_sha)"
meta=$(cat "$upload_dir/blob.json" 2>/dev/null || echo '{}')
python3 -c "import json,sys; m=json.loads(sys.argv[1]); sys.exit(0 if m.get('size')==$size and m.get('sha256')=='$source_sha' else 1)" "$meta" \
  && verdict ok "blob.json records the source's size and SHA-256" || verdict fail "blob.json says $meta"

# Bytes lost: the source's bytes the stored file does not hold at their place.
bytes_lost=$(python3 - "$source_file" "$blob" <<'EOF'
import sys
src, blob = sys.argv[1], sys.argv[2]
lost = 0
try:
    b = open(blob, "rb")
except FileNotFoundError:
    b = None
with open(src, "rb") as s:
    while True:
        x = s.read(1 << 22)
        if not x:
            break
        y = b.read(len(x)) if b else b""
        if x != y:
            lost += len(x) - sum(1 for p, q in zip(x, y) if p == q)
print(lost)
EOF
)

# The sweep: one more server, short expiry, sweeping every second. What may
# remain: the finished upload's blob, blob.json and session record, the lock
# files, and their directories.
kill_server
start_server "$work/server.sweep.log" --expiry 2 --sweep-interval 1 --tombstone-retention 1
leftovers() {
  (cd "$data" && find . -mindepth 1 | sed 's|^\./||' | sort) | grep -vxE \
    "blobs|blobs/uploads|blobs/uploads/$session|blobs/uploads/$session/blob|blobs/uploads/$session/blob\.json|store|store/sessions|store/sessions/$session\.json|store/locks|store/locks/[0-9a-f]{2}\.lock" || true
}
left=""
for _ in $(seq 1 180); do
  left=$(leftovers)
  [ -z "$left" ] && break
  sleep 0.5
done
if [ -z "$left" ]; then
  verdict ok "after the sweep only the finished upload remains (blob, blob.json, record, locks)"
else
  verdict fail "after the sweep more than the finished upload remains:"
  (cd "$data" && find . -mindepth 1 | sort | sed 's/^/    /')
fi
code=$(curl -s -o /dev/null -w '%{http_code}' "$(cat "$control/url")/attachment/session/$abandoned")
[ "$code" = 404 ] && verdict ok "the abandoned session was swept and forgotten" \
  || verdict fail "the abandoned session answers HTTP $code, not 404"
state=$(curl -s "$(cat "$control/url")/attachment/session/$session" | python3 -c "import json,sys; print(json.load(sys.stdin).get('state'))" || true)
[ "$state" = completed ] && verdict ok "the finished upload is still completed after the sweep" \
  || verdict fail "the finished upload is $state after the sweep"
kill -TERM "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=""

panics=$(grep -l "panicked" "$work"/server.*.log 2>/dev/null || true)
[ -z "$panics" ] && verdict ok "no server panicked ($((restarts + 2)) server runs)" \
  || { verdict fail "a server panicked:"; grep -h -A3 "panicked" $panics | head -n 20; }

total_seconds=$(( $(date +%s) - started ))
echo "  seed $seed; kills survived: $kills ($kills_mid mid-upload); resumes: $(field resumes);" \
  "requests cut by a kill: $(field requestsCut); record writes cut: $(sort -u "$work/cut-records" 2>/dev/null | wc -l); bytes sent: $(field bytesSent); bytes resent: $(field bytesResent);" \
  "bytes lost: $bytes_lost; upload $upload_seconds s, total $total_seconds s"
echo "crash: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
