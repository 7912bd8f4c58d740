#!/usr/bin/env bash
# Fuzzes the header parsers and the pure state machine with cargo-fuzz
# (libFuzzer): every target in fuzz/fuzz_targets for FUZZ_SECONDS seconds
# each (6 by default: about a minute in all, after the build), starting from
# a temporary copy of its seed corpus in fuzz/corpus, so that the entries a
# run adds never touch the clone. Fails on any crash (libFuzzer keeps the
# input in fuzz/artifacts/<target>/, which git ignores; add it to
# fuzz/corpus/<target>/ once fixed). Prints each target's executions and a
# closing `fuzz: N passed, M failed`.
#
#   bash scripts/fuzz.sh                        # every target
#   FUZZ_SECONDS=300 bash scripts/fuzz.sh machine
#
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 enables them on the
# stable toolchain. No sanitizer: the crate forbids unsafe code, and
# AddressSanitizer would halve the executions.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-6}"
export RUSTC_BOOTSTRAP=1
# A build cache outside the clone, reused by later runs (as .ci/run does).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/resumable-target}/fuzz"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
opts=(--sanitizer none)

echo "== fuzz: building ${#targets[@]} targets"
build_start=$SECONDS
cargo fuzz build "${opts[@]}"
echo "fuzz: built in $((SECONDS - build_start)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
total=0
start=$SECONDS
for target in "${targets[@]}"; do
  corpus="$work/corpus/$target"
  mkdir -p "$corpus"
  if [ -d "fuzz/corpus/$target" ]; then
    cp -R "fuzz/corpus/$target/." "$corpus/"
  fi
  log="$work/$target.log"
  if cargo fuzz run "${opts[@]}" "$target" "$corpus" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    status=passed
    passed=$((passed + 1))
  else
    status=FAILED
    failed=$((failed + 1))
    tail -n 80 "$log"
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)"
  if [ -z "$runs" ]; then
    runs="$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n 1)"
  fi
  echo "fuzz $target: $status, ${runs:-0} executions ($(ls "$corpus" | wc -l) corpus entries)"
  total=$((total + ${runs:-0}))
done

echo "fuzz: $total executions in $((SECONDS - start)) s"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
