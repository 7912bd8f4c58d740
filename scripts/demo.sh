#!/usr/bin/env bash
# Starts the example upload server on the embedded filesystem store and sink,
# uploads a file to it through the session REST API (chunks in parallel and
# out of order), completes it, checks the stored file's SHA-256 against the
# source, and stops the server.
#
#   bash scripts/demo.sh [FILE]      (default: a fresh 40 MiB random file)
#
# Needs cargo, curl and python3. The server listens on a free port of
# 127.0.0.1 only; its data directory is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
data="$work/data"
log="$work/server.log"
file="${1:-$work/upload.bin}"
if [ $# -eq 0 ]; then
  head -c $((40 * 1024 * 1024 + 12345)) /dev/urandom > "$file"
fi

source scripts/lib/server.sh
start_server "$data" "$log" --chunk-size $((8 * 1024 * 1024))
addr=$SERVER_ADDR
base="http://$addr/attachment"
echo "server listening on $addr (data in $data)"

size=$(stat -c %s "$file")
sha=$(sha256sum "$file" | cut -d' ' -f1)
json() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

session=$(curl -sf -X POST "$base/initiate" -H 'content-type: application/json' \
  -d "{\"fileName\": \"$(basename "$file")\", \"fileSize\": $size, \"sha256\": \"$sha\"}")
id=$(json sessionId <<< "$session")
chunk=$(json chunkSize <<< "$session")
total=$(json totalChunks <<< "$session")
echo "initiated session $id: $total chunk(s) of $chunk bytes"

upload_chunk() {
  local i=$1 part="$work/chunk.$1"
  dd if="$file" of="$part" bs="$chunk" skip="$i" count=1 status=none
  local digest
  digest=$(python3 -c "import base64,hashlib,sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1],'rb').read()).digest()).decode())" "$part")
  curl -sf -o /dev/null -X PUT "$base/session/$id/upload/$i" \
    -H 'content-type: application/octet-stream' \
    -H "content-digest: sha-256=:$digest:" --data-binary "@$part"
  rm -f "$part"
  echo "  chunk $i stored"
}
export -f upload_chunk
export file chunk base id work
# Every chunk, in reverse order, four at a time.
seq $((total - 1)) -1 0 | xargs -P 4 -I{} bash -c 'upload_chunk {}'

received=$(curl -sf "$base/session/$id" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['receivedChunks']))")
echo "status: $received of $total chunk(s) received"

done_json=$(curl -sf -X POST "$base/session/$id/complete")
stored_sha=$(json sha256 <<< "$done_json")
echo "completed: $(json state <<< "$done_json"), sha256 $stored_sha"

blob="$data/blobs/uploads/$id/blob"
[ "$stored_sha" = "$sha" ] || { echo "FAIL: the server's SHA-256 differs from the source's"; exit 1; }
[ "$(sha256sum "$blob" | cut -d' ' -f1)" = "$sha" ] || { echo "FAIL: the stored file differs from the source"; exit 1; }
stop_server
echo "OK: $blob equals the source ($size bytes)"
if [ "${CI:-}" = "true" ]; then rm -rf "$work"; fi
