#!/usr/bin/env bash
# Fuzzes the three readers with cargo-fuzz (libFuzzer), each for MINUTES.
#
# Usage: fuzz/run.sh [MINUTES] [TARGET...]
#   MINUTES  per target (default 20)
#   TARGET   io_properties, job_file, sched_groups (default: all three, one after the other)
#
# Needs a nightly toolchain (`cargo +nightly --version`) and `cargo install cargo-fuzz`.
# Each target's corpus (fuzz/corpus/TARGET, kept between runs, not committed) is seeded from
# the reference files in ../shared/compat/ and the project's own fixtures and test files.
# An input that panics or takes over 1 s (-timeout=1) stops the run and is saved under
# fuzz/artifacts/TARGET/, except a "timeout" whose input then takes under 0.1 s of CPU time alone:
# on a shared machine that is a stall of the machine; it is moved to fuzz/artifacts/TARGET/stalls/
# and fuzzing goes on for the rest of the time. Reproduce a finding with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# then copy it to fuzz/regressions/TARGET/ (the readers' tests run every file there on stable:
# io-tester/tests/fuzz_regressions.rs, scheduler/tests/io_properties.rs) before fixing.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-20}
shift || true
targets=("$@")
if [[ ${#targets[@]} == 0 ]]; then
    targets=(io_properties job_file sched_groups)
fi

seed() { # TARGET DIR: copies the seed files for TARGET into DIR
    local target=$1 dir=$2 f
    mkdir -p "$dir"
    local files=()
    case $target in
    io_properties)
        files+=(scheduler/tests/fixtures/yaml/*.yaml)
        ;;
    job_file | sched_groups)
        files+=(io-tester/src/workload/testdata/*.yaml)
        [[ -d ../shared/compat ]] && files+=(../shared/compat/*.yaml)
        ;;
    esac
    files+=(fuzz/seeds/"$target"/* fuzz/regressions/"$target"/*)
    for f in "${files[@]}"; do
        [[ -f $f ]] && cp "$f" "$dir/seed-$(basename "$f")"
    done
    return 0
}

# Whether INPUT, run alone 10 times by TARGET's binary, takes under 0.1 s of CPU time a run: a
# "timeout" on such an input was the machine stalling (it is shared), not the input. CPU time,
# not wall time: on a loaded machine (and under `nice`) a 5 ms input can wait seconds for a core.
runs_fast() { # TARGET INPUT
    local bin cpu
    bin=$(ls fuzz/target/*/release/"$1" | head -n 1)
    cpu=$({ TIMEFORMAT='%3U %3S'; time "$bin" -runs=10 "$2" >/dev/null 2>&1; } 2>&1) || return 1
    awk -v u="${cpu% *}" -v s="${cpu#* }" 'BEGIN { exit !(u + s < 1.0) }'
}

for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    seed "$target" "$corpus"
    echo "== $target: $minutes min, corpus $(find "$corpus" -type f | wc -l) files"
    end=$((SECONDS + minutes * 60))
    while ((SECONDS < end)); do
        set +e
        cargo +nightly fuzz run "$target" "$corpus" -- \
            -max_total_time=$((end - SECONDS)) -timeout=1 -max_len=16384 \
            -dict=fuzz/yaml.dict -print_final_stats=1
        rc=$?
        set -e
        ((rc == 0)) && break
        found=$(ls -t fuzz/artifacts/"$target"/* 2>/dev/null | head -n 1)
        if [[ $(basename "$found") == timeout-* ]] && runs_fast "$target" "$found"; then
            mkdir -p fuzz/artifacts/"$target"/stalls
            mv "$found" fuzz/artifacts/"$target"/stalls/
            echo "== $target: $found runs in under 0.1 s alone: the machine stalled; going on"
            continue
        fi
        echo "== $target: finding $found"
        exit "$rc"
    done
done
