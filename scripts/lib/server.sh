# Starts the example upload server on a free port of 127.0.0.1.
#
#   source scripts/lib/server.sh
#   start_server DATA_DIR LOG_FILE [server flags...]
#
# Builds the example first. Sets SERVER_PID and SERVER_ADDR (host:port) and
# stops the server on exit. Needs cargo.

start_server() {
  local data=$1 log=$2
  shift 2
  cargo build --quiet --example server
  local bin="${CARGO_TARGET_DIR:-target}/debug/examples/server"
  : > "$log"
  "$bin" --addr 127.0.0.1:0 --data-dir "$data" "$@" > "$log" 2>&1 &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
  SERVER_ADDR=""
  for _ in $(seq 1 100); do
    SERVER_ADDR=$(sed -n 's/.*listening addr=\([0-9.:]*\).*/\1/p' "$log" | head -n 1 || true)
    [ -n "$SERVER_ADDR" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server did not start:" >&2
  cat "$log" >&2
  return 1
}

# Stops the server started by start_server and waits for it.
stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  trap - EXIT
}
