#!/usr/bin/env bash
# Interop tests against clients written elsewhere: tus-js-client (Node) and
# tuspy (Python), pinned by package-lock.json and requirements.txt. Starts the
# example server on a free port of 127.0.0.1, uploads a 64 MiB file in every
# scenario, and checks each stored file's SHA-256 against the source.
#
#   bash tests/interop/run.sh
#
# Needs cargo, node with npm, and python3 with venv. Installs the clients
# (npm ci; a virtualenv under ~/.cache) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/interop

[ -d "$here/node_modules/tus-js-client" ] || npm ci --prefix "$here" --no-audit --no-fund --silent
venv="${HOME}/.cache/resumable-interop-venv"
if ! "$venv/bin/python" -c 'import tusclient' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --requirement "$here/requirements.txt"
fi

work=$(mktemp -d)
source scripts/lib/server.sh
start_server "$work/data" "$work/server.log"
endpoint="http://$SERVER_ADDR/files/"
source_file="$work/source.bin"
head -c $((64 * 1024 * 1024)) /dev/urandom > "$source_file"
want=$(sha256sum "$source_file" | cut -d' ' -f1)

passed=0
failed=0
check() {
  local name=$1 out=$2
  local url id blob got
  url=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["url"])' <<< "$out" 2>/dev/null || true)
  id=${url##*/}
  blob="$work/data/blobs/uploads/$id/blob"
  got=$( [ -n "$id" ] && [ -f "$blob" ] && sha256sum "$blob" | cut -d' ' -f1 || echo "no stored file")
  if [ "$got" = "$want" ]; then
    echo "ok   $name ($url)"
    passed=$((passed + 1))
  else
    echo "FAIL $name: stored $got, source $want"
    echo "$out" | tail -n 5
    failed=$((failed + 1))
  fi
}

run() {
  local name=$1
  shift
  local out
  out=$(timeout 300 "$@" 2>&1) || true
  check "$name" "$out"
}

run "tus-js-client, 5 MiB chunks" node "$here/tus-js.mjs" "$endpoint" "$source_file" chunked
run "tus-js-client, parallelUploads: 4" node "$here/tus-js.mjs" "$endpoint" "$source_file" parallel
run "tus-js-client, aborted and resumed" node "$here/tus-js.mjs" "$endpoint" "$source_file" resume
for draft in ietf-draft-03 ietf-draft-05; do
  run "tus-js-client, protocol $draft" node "$here/tus-js.mjs" "http://$SERVER_ADDR/uploads/" "$source_file" "$draft"
done
run "tuspy, chunked with resume and SHA-1 checksums" "$venv/bin/python" "$here/tuspy_upload.py" "$endpoint" "$source_file"

stop_server
rm -rf "$work"
echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
