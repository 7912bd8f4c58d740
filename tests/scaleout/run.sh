#!/usr/bin/env bash
# Scale-out test: two server processes on two ports share one session store
# (Redis, then PostgreSQL) and one S3 bucket (moto's S3-compatible server).
# Every server runs on a free port of 127.0.0.1 and is stopped at the end.
#
# For each store:
#   1. A 256 MiB upload sends its chunks to both instances at once, out of
#      order, sends three chunks to both at the same time, and completes on
#      one instance while a late chunk arrives at the other. The stored
#      object's SHA-256 must equal the source's.
#   2. An upload abandoned on instance A must be swept by instance B (A
#      does not sweep). Afterwards no incomplete multipart upload and no
#      session key of it may remain.
# Then the same 256 MiB through one instance on the filesystem, for the
# throughput comparison.
#
#   bash tests/scaleout/run.sh        (after scripts/test.sh installed the services)
#   SCALEOUT_PROFILE=release bash tests/scaleout/run.sh    (throughput figures)
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d)
chmod 755 "$work"  # PostgreSQL runs as its own user and must reach its directory
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# The services.
redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$work" > "$work/redis.log" 2>&1 &
pids+=($!)
s3_port=$(free_port)
"$HOME/.cache/resumable-test-venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" > "$work/moto.log" 2>&1 &
pids+=($!)
pg_port=$(free_port)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -n 1)
mkdir -p "$work/pg"
as_pg=()
if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$work/pg"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" "$pg_bin/initdb" -A trust -U postgres -D "$work/pg/data" > "$work/initdb.log"
"${as_pg[@]}" "$pg_bin/postgres" -D "$work/pg/data" -h 127.0.0.1 -p "$pg_port" -k "$work/pg" -c fsync=off > "$work/pg.log" 2>&1 &
pids+=($!)
wait_port "$redis_port"
wait_port "$s3_port"
wait_port "$pg_port"
s3="http://127.0.0.1:$s3_port"
curl -sf -X PUT "$s3/uploads" > /dev/null

export AWS_ENDPOINT="$s3" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
# SCALEOUT_PROFILE=release measures throughput; the default checks behaviour.
profile=${SCALEOUT_PROFILE:-debug}
if [ "$profile" = release ]; then
  cargo build --quiet --release --example server --features redis,postgres,s3
else
  cargo build --quiet --example server --features redis,postgres,s3
fi
bin="${CARGO_TARGET_DIR:-target}/$profile/examples/server"

source_file="$work/source.bin"
head -c $((256 * 1024 * 1024)) /dev/urandom > "$source_file"

passed=0
failed=0
verdict() {
  if [ "$1" = ok ]; then echo "ok   $2"; passed=$((passed + 1)); else echo "FAIL $2"; failed=$((failed + 1)); fi
}

# start_instance NAME STORE SINK SWEEP_INTERVAL -> sets PORT
start_instance() {
  local name=$1 store=$2 sink=$3 sweep=$4
  PORT=$(free_port)
  "$bin" --addr "127.0.0.1:$PORT" --data-dir "$work/$name" --store "$store" --sink "$sink" \
    --expiry 8 --sweep-interval "$sweep" --tombstone-retention 1 > "$work/$name.log" 2>&1 &
  pids+=($!)
  wait_port "$PORT"
}

field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }
incomplete_uploads() { curl -sf "$s3/uploads?uploads" | grep -o '<UploadId>' | wc -l; }

for store in "redis://127.0.0.1:$redis_port" "postgres://postgres@127.0.0.1:$pg_port/postgres"; do
  kind=${store%%:*}
  start_instance "$kind-a" "$store" "s3://uploads/$kind" 3600
  port_a=$PORT
  start_instance "$kind-b" "$store" "s3://uploads/$kind" 1
  port_b=$PORT
  out=$(timeout 600 python3 tests/scaleout/drive.py upload "http://127.0.0.1:$port_a" "http://127.0.0.1:$port_b" "$source_file")
  echo "  $kind: $out"
  [ "$(field sha256Matches <<< "$out")" = True ] && verdict ok "$kind + S3: 256 MiB through two instances, SHA-256 equal" \
    || verdict fail "$kind + S3: SHA-256 differs"
  id=$(field sessionId <<< "$out")
  object_sha=$(curl -sf "$s3/uploads/$kind/$id" | sha256sum | cut -d' ' -f1)
  [ "$object_sha" = "$(sha256sum "$source_file" | cut -d' ' -f1)" ] && verdict ok "$kind + S3: the object in the bucket equals the source" \
    || verdict fail "$kind + S3: the object in the bucket differs ($object_sha)"

  abandoned=$(python3 tests/scaleout/drive.py abandon "http://127.0.0.1:$port_a" "$source_file" | field sessionId)
  gone=""
  for _ in $(seq 1 60); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_a/attachment/session/$abandoned")
    if [ "$code" = 404 ]; then gone=yes; break; fi
    sleep 0.5
  done
  [ -n "$gone" ] && verdict ok "$kind + S3: the abandoned session was swept by the other instance and forgotten" \
    || verdict fail "$kind + S3: the abandoned session is still there (HTTP $code)"
  grep -q "sweep report=" "$work/$kind-b.log" && ! grep -q "sweep report=" "$work/$kind-a.log" \
    && verdict ok "$kind + S3: instance B swept, instance A did not" || verdict fail "$kind + S3: the sweep ran elsewhere"
  [ "$(incomplete_uploads)" = 0 ] && verdict ok "$kind + S3: no incomplete multipart upload remains" \
    || verdict fail "$kind + S3: $(incomplete_uploads) incomplete multipart upload(s) remain"
  case $kind in
    redis) left=$(redis-cli -p "$redis_port" --scan | grep -c "$abandoned" || true) ;;
    postgres) left=$("$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -tAc \
      "select count(*) from resumable_sessions where replace(id::text, '-', '') = '$abandoned'" || echo "?") ;;
  esac
  [ "$left" = 0 ] && verdict ok "$kind + S3: no key or row of the abandoned session remains" \
    || verdict fail "$kind + S3: $left key(s) or row(s) of the abandoned session remain"
done

start_instance fs-single fs fs 3600
out=$(timeout 600 python3 tests/scaleout/drive.py upload "http://127.0.0.1:$PORT" "http://127.0.0.1:$PORT" "$source_file")
echo "  fs, one instance: $out"
[ "$(field sha256Matches <<< "$out")" = True ] && verdict ok "fs: 256 MiB through one instance, SHA-256 equal" || verdict fail "fs: SHA-256 differs"

echo "scaleout: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
