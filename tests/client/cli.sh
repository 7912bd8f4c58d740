#!/usr/bin/env bash
# The upload example end to end: starts the example server on a free port of
# 127.0.0.1, uploads a 48 MiB file with `examples/upload` (rate-limited so
# that it is still running when interrupted), sends SIGINT once the server
# holds a few chunks, checks the upload stopped with exit code 130 and kept
# its state file, runs the same command again, and checks that it said it
# resumed (and from how many bytes), that the state file is gone, and that
# the stored file's SHA-256 equals the source's.
#
#   bash tests/client/cli.sh
#
# Needs cargo, curl and python3. Every wait is bounded; the server, the
# upload and the temporary files are removed on exit, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --quiet --features client --example server --example upload
bin="${CARGO_TARGET_DIR:-target}/debug/examples"

work=$(mktemp -d)
server_pid=""
upload_pid=""
cleanup() {
  if [ -n "$upload_pid" ]; then kill -KILL "$upload_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for log in "$work"/*.log; do
    [ -f "$log" ] && { echo "--- $(basename "$log")" >&2; tail -n 20 "$log" >&2; }
  done
  exit 1
}

chunk=$((1024 * 1024))
"$bin/server" --addr 127.0.0.1:0 --data-dir "$work/data" --chunk-size "$chunk" > "$work/server.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
  addr=$(sed -n 's/.*listening addr=\([0-9.:]*\).*/\1/p' "$work/server.log" | head -n 1 || true)
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || fail "the server did not start"
  sleep 0.1
done
[ -n "$addr" ] || fail "the server did not start within 10 s"
url="http://$addr"
echo "server listening on $addr"

file="$work/big.bin"
size=$((48 * chunk + 4321))
head -c "$size" /dev/urandom > "$file"
sha=$(sha256sum "$file" | cut -d' ' -f1)
state="$file.upload-state.json"

received_chunks() {
  curl -sf "$url/attachment/session/$1" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["receivedChunks"]))'
}

# 1. At 8 MiB/s the upload takes about 6 s; it is interrupted after its
#    first chunks, long before that.
"$bin/upload" "$file" --url "$url" --limit-rate $((8 * chunk)) --plain \
  > "$work/first.out.log" 2> "$work/first.err.log" &
upload_pid=$!
session=""
held=0
for _ in $(seq 1 300); do
  kill -0 "$upload_pid" 2>/dev/null || fail "the upload ended before it could be interrupted"
  if [ -z "$session" ] && [ -s "$state" ]; then
    session=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["session"])' "$state")
  fi
  if [ -n "$session" ]; then
    held=$(received_chunks "$session" || echo 0)
    [ "$held" -ge 3 ] && break
  fi
  sleep 0.1
done
[ "$held" -ge 3 ] || fail "the server did not receive 3 chunks within 30 s"
kill -INT "$upload_pid"
status=0
wait "$upload_pid" || status=$?
upload_pid=""
[ "$status" -eq 130 ] || fail "the interrupted upload exited with $status, not 130"
grep -q "cancelled: the state is kept in $state" "$work/first.err.log" ||
  fail "the interrupted upload did not say where its state is"
[ -f "$state" ] || fail "the state file was not kept"
held=$(received_chunks "$session")
total=$(( (size + chunk - 1) / chunk ))
[ "$held" -lt "$total" ] || fail "the first run was not interrupted (all $total chunks arrived)"
echo "interrupted: the server holds $held of $total chunks of session $session"

# 2. The same command again resumes the session.
status=0
timeout 300 "$bin/upload" "$file" --url "$url" --plain \
  > "$work/second.out.log" 2> "$work/second.err.log" || status=$?
[ "$status" -eq 0 ] || fail "the resumed upload exited with $status"
resumed=$(sed -n "s/^resuming session $session: the server already holds \([0-9]*\) of $size bytes.*/\1/p" "$work/second.err.log")
[ -n "$resumed" ] || fail "the second run did not say it resumed session $session"
[ "$resumed" -eq $((held * chunk)) ] ||
  fail "the second run resumed from $resumed bytes, the server held $((held * chunk))"
grep -q "uploaded $file ($size bytes) to session $session (resumed from $resumed bytes;.*sha256 $sha" \
  "$work/second.out.log" || fail "the second run did not report the resumed upload and its SHA-256"
[ ! -e "$state" ] || fail "the state file is still there after the upload completed"
stored=$(sha256sum "$work/data/blobs/uploads/$session/blob" | cut -d' ' -f1)
[ "$stored" = "$sha" ] || fail "the stored file's SHA-256 $stored differs from the source's $sha"
echo "resumed from $resumed bytes: $(cat "$work/second.out.log")"
echo "OK: interrupted with SIGINT, resumed, stored file equals the source"
