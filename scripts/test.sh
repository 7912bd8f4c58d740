#!/usr/bin/env bash
# Runs every test: installs what the backend tests start (Redis and
# PostgreSQL from Debian's packages, moto's S3-compatible server in a
# virtualenv under ~/.cache) when missing, then `cargo test --all-features`.
# The tests start each server themselves on a free port of 127.0.0.1.
#
#   bash scripts/test.sh [cargo test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}"
  # The packages start their own servers; the tests start theirs.
  $sudo systemctl stop redis-server postgresql 2>/dev/null || true
fi
venv="${HOME}/.cache/resumable-test-venv"
if [ ! -x "$venv/bin/moto_server" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --requirement tests/services-requirements.txt
fi

cargo test --all-features "$@"
