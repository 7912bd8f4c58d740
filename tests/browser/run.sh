#!/usr/bin/env bash
# The example server's upload page in a real browser: starts the server on a
# free port of 127.0.0.1 (temporary data directory, 1 MiB chunks, so a 50 MiB
# file has 50), installs playwright-core (npm ci, pinned by
# package-lock.json), and drives headless Chromium through the page with
# upload.test.mjs: pause, resume, reload, a lost connection, several files,
# a refused file, drag and drop, a vanished session, Cancel; every stored
# file is checked by SHA-256.
#
#   bash tests/browser/run.sh
#   UPDATE_SCREENSHOT=1 bash tests/browser/run.sh   (also writes docs/browser-page.png)
#
# Needs cargo, node with npm, and Chromium (apt-get install -y chromium; or
# set CHROMIUM to another binary). The screenshot of the finished page goes
# to $ARTIFACT_DIR (default: target/browser-artifacts).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/browser

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "no Chromium at $CHROMIUM: apt-get install -y chromium (or set CHROMIUM)" >&2
  exit 1
fi

npm ci --prefix "$here" --no-audit --no-fund --prefer-offline --silent \
  --cache "${HOME}/.cache/resumable-npm"

work=$(mktemp -d)
source scripts/lib/server.sh
start_server "$work/data" "$work/server.log" --chunk-size $((1024 * 1024))
cleanup() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
echo "server listening on $SERVER_ADDR (data in $work/data)"

export BASE_URL="http://$SERVER_ADDR"
export DATA_DIR="$work/data"
export ARTIFACT_DIR="${ARTIFACT_DIR:-$PWD/target/browser-artifacts}"
status=0
# NODE_PATH is not used by ES modules: run from the package so that
# playwright-core resolves from its node_modules.
(cd "$here" && timeout 600 node --test --test-concurrency=1 upload.test.mjs) || status=$?
if [ "$status" -ne 0 ]; then
  echo "browser test failed (exit $status); the server's log:" >&2
  tail -n 40 "$work/server.log" >&2
fi
exit "$status"
