#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) of the parsers that read
# untrusted input; see fuzz/README.md. Not run in CI.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all four) for SECONDS (default 60) one after
# another, one libFuzzer job each, and prints the executions per target. New
# inputs go to fuzz/corpus-run/<target>/ (not committed); the committed seeds
# in fuzz/corpus/<target>/ are read only. A crash stops that target, leaves
# the input in fuzz/artifacts/<target>/ and makes the script exit non-zero
# after the other targets have run.
#
# Toolchain: cargo-fuzz (`cargo install cargo-fuzz`) wants nightly for
# -Zsanitizer; with only a stable toolchain, RUSTC_BOOTSTRAP=1 (set below)
# makes stable rustc accept the -Z flags, and cargo fuzz works as is,
# AddressSanitizer included (tested with rustc 1.95.0 stable). Environment:
#   FUZZ_SANITIZER=none      build without ASan (faster; default: address)
#   FUZZ_JOBS=N              parallel libFuzzer jobs per target (default 1)
#   FUZZ_ARGS="-max_len=..." more libFuzzer flags
#   CARGO_FUZZ_BUILD_ARGS    more `cargo fuzz build` flags
#   CARGO_TARGET_DIR         where the build goes (default fuzz/target)
# Replay one input: fuzz/target/x86_64-unknown-linux-gnu/release/<target> FILE
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(manifest tar_extract config_jsonc pg_connection)
fi
sanitizer="${FUZZ_SANITIZER:-address}"
jobs="${FUZZ_JOBS:-1}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

# One build for every target (they share the dependency graph); 16 codegen
# units build the large dependency graph much faster than cargo-fuzz's default 1.
# The targets then run from that build (not `cargo fuzz run`, which rebuilds
# each time: in a checkout that others edit meanwhile, all targets should test
# the same code, and a half-made edit elsewhere should not stop the run).
# shellcheck disable=SC2086
cargo fuzz build --sanitizer "$sanitizer" --codegen-units 16 ${CARGO_FUZZ_BUILD_ARGS:-}
bin="${CARGO_TARGET_DIR:-target}/$(rustc -vV | sed -n 's/^host: //p')/release"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}"

# One job is libFuzzer's plain in-process run (what -jobs=1 amounts to, without
# the extra supervising process and its fuzz-0.log).
parallel=""
if [ "$jobs" -gt 1 ]; then
    parallel="-jobs=$jobs -workers=$jobs"
fi

declare -A execs
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus-run/$t" "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    echo "== $t: ${seconds}s"
    set +e
    # shellcheck disable=SC2086
    "$bin/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$seconds" -print_final_stats=1 \
        $parallel ${FUZZ_ARGS:-} "corpus-run/$t" "corpus/$t" >"$log" 2>&1
    rc=$?
    set -e
    # With several jobs each one prints its own stat line (in fuzz-N.log).
    n=$(cat "$log" fuzz-*.log 2>/dev/null | awk '/^stat::number_of_executed_units/ {s += $2} END {print s + 0}' || true)
    execs[$t]=$n
    if [ $rc -ne 0 ]; then
        status=1
        echo "   CRASH (exit $rc): see $log and artifacts/$t/"
        grep -E '^(thread .* panicked|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)' "$log" | head -5 | sed 's/^/   /' || true
    fi
    echo "   $n executions, corpus-run/$t: $(find "corpus-run/$t" -type f | wc -l) inputs"
    rm -f fuzz-*.log
done

echo
printf '%-16s %14s   (%ss each)\n' target executions "$seconds"
for t in "${targets[@]}"; do
    printf '%-16s %14s\n' "$t" "${execs[$t]}"
done
exit $status
