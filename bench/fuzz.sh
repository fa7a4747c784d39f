#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time, one after another, and prints the
# executions and crashes of each. Usage:
#
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 60 s, every target)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); set
# ROOKERY_FUZZ_SKIP_BUILD=1 to reuse the last build. Everything it
# writes goes under $ROOKERY_FUZZ_DIR (default /var/cache/rookery-fuzz): the build, the
# corpora (seeded from inventories/, playbooks/, stacks/ and small synthetic disk headers,
# then grown by the fuzzer across runs) and the crash artifacts. A crash is reported with the
# command that reproduces it; it belongs in the crate's own tests once understood.
set -euo pipefail

secs=${1:-60}
shift || true
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${ROOKERY_FUZZ_DIR:-/var/cache/rookery-fuzz}
sanitizer=${ROOKERY_FUZZ_SANITIZER:-none}
all=(signatures inventory_yaml inventory_ini playbook stack facts agent_frame runner_frame)
targets=("${@:-${all[@]}}")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }
mkdir -p "$work"
fuzz=(cargo +nightly fuzz)
common=(--fuzz-dir "$repo/fuzz" --target-dir "$work/target" --sanitizer "$sanitizer" --debug-assertions)

max_len() {
    case $1 in
        signatures) echo 300000 ;;  # a 256 KiB image: head, btrfs/swap at 64 KiB, backup GPT
        *) echo 65536 ;;
    esac
}

seed() {
    local t=$1 dir=$work/corpus/$1
    mkdir -p "$dir"
    case $t in
        inventory_yaml) cp "$repo"/inventories/*.yaml "$repo"/stacks/*/inventory.yaml "$dir"/ 2>/dev/null || true
            for f in "$repo"/stacks/*/inventory.yaml; do cp "$f" "$dir/$(basename "$(dirname "$f")")-inventory.yaml"; done ;;
        inventory_ini) cp "$repo"/inventories/*.ini "$dir"/ ;;
        playbook) for f in "$repo"/playbooks/*.yaml "$repo"/bench/play/*.yaml; do cp "$f" "$dir/"; done ;;
        stack) for f in "$repo"/stacks/*/stack.yaml; do cp "$f" "$dir/$(basename "$(dirname "$f")").yaml"; done ;;
        facts) for f in "$repo"/stacks/*/facts.json; do cp "$f" "$dir/$(basename "$(dirname "$f")").json"; done ;;
        agent_frame)
            printf '%s\n' '{"id":0,"kind":"response","body":{"kind":"hello","value":{"protocol_version":1,"agent_version":"0.1.0","self_sha256":null,"euid":0}}}' >"$dir/hello"
            printf '%s\n' '{"id":3,"kind":"event","body":{"kind":"progress","message":"x"}}' >"$dir/event"
            printf '%s\n' '{"id":4,"kind":"response","body":{"kind":"error","value":{"code":"refused","message":"no"}}}' >"$dir/error" ;;
        runner_frame)
            printf '%s\n' '{"id":0,"request":{"op":"hello","args":{"protocol_version":1,"runner_version":"0.1.0"}}}' >"$dir/hello"
            printf '%s\n' '{"id":1,"request":{"op":"probe","args":{}}}' >"$dir/probe"
            printf '%s\n' '{"id":2,"request":{"op":"exec","args":{"argv":["true"],"timeout_secs":5}}}' >"$dir/exec" ;;
        signatures) python3 "$repo/bench/fuzz_seeds.py" "$dir" ;;
    esac
}

if [ -z "${ROOKERY_FUZZ_SKIP_BUILD:-}" ]; then
    echo "building fuzz targets (nightly, sanitizer=$sanitizer) into $work/target" >&2
    nice -n 10 "${fuzz[@]}" build "${common[@]}" >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
fi
# Run the built binaries directly: `cargo fuzz run` would rebuild before every target.
bin=$work/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release

printf '%-16s %8s %14s %8s %s\n' TARGET SECONDS EXECUTIONS CRASHES ARTIFACTS
total_execs=0 total_crashes=0
for t in "${targets[@]}"; do
    seed "$t"
    art=$work/artifacts/$t
    mkdir -p "$art"
    before=$(find "$art" -type f | wc -l)
    log=$work/$t.log
    nice -n 10 "$bin/$t" "$work/corpus/$t" \
        -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$art/" >"$log" 2>&1 || true
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    execs=${execs:-0}
    after=$(find "$art" -type f | wc -l)
    crashes=$((after - before))
    total_execs=$((total_execs + execs)) total_crashes=$((total_crashes + crashes))
    printf '%-16s %8s %14s %8s %s\n' "$t" "$secs" "$execs" "$crashes" "$art"
    if [ "$crashes" -gt 0 ]; then
        grep -m3 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | sed 's/^/    /' || true
        echo "    reproduce: $bin/$t <artifact>   (or: cargo +nightly fuzz run --fuzz-dir fuzz $t <artifact>)"
    fi
done
echo "total: $total_execs executions, $total_crashes crashes"
