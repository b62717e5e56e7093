#!/usr/bin/env bash
# How loading scales with the size of a job file or an io-properties file.
#
# Times, each as one run of the release binaries:
#   - `io-tester --check-conf` on job files of N = 1000, 2000, 4000, 8000 jobs whose LAST job
#     is bad (the whole file is read before the error), exit 2 expected;
#   - `ioinfo --io-properties-file` on io-properties with 16000 disks (none holds the
#     directory, so it exits 2 right after loading);
#   - `io-tester --check-conf` on a ~50 MB job file, which must be refused at once (exit 2).
#
# Usage: bench/parse-scaling.sh [BIN_DIR]
#   BIN_DIR  directory holding io-tester and ioinfo (default: target/release, built first)
#   TIMEOUT  seconds before a case is given up (default 300)
#   SIZES    job counts (default "1000 2000 4000 8000")
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [[ -z $bin ]]; then
    cargo build --release -q -p io-tester -p ioinfo
    bin=target/release
fi
timeout_s=${TIMEOUT:-300}
sizes=${SIZES:-"1000 2000 4000 8000"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One job, block style, as in the reference's conf.yaml.
job() {
    printf -- '- name: job%d\n  type: randread\n  shards: all\n  data_size: 1GB\n  shard_info:\n    parallelism: 2\n    reqsize: %s\n    shares: 100\n    think_time: 10us\n' "$1" "$2"
}

jobs_file() { # N PATH: N-1 good jobs, then one with a bad reqsize
    local n=$1 path=$2 i
    {
        for ((i = 1; i < n; i++)); do job "$i" 4kB; done
        job "$n" 1000
    } >"$path"
}

disks_file() { # N PATH
    local n=$1 path=$2 i
    {
        echo "disks:"
        for ((i = 0; i < n; i++)); do
            printf '  - mountpoint: /mnt/disk%d\n    read_iops: 314742\n    read_bandwidth: 3089104896\n    write_iops: 91662\n    write_bandwidth: 1764753408\n' "$i"
        done
    } >"$path"
}

# case NAME FILE CMD...: runs CMD, prints seconds, exit code and the first line of stderr.
run_case() {
    local name=$1 file=$2
    shift 2
    local start end rc
    start=$(date +%s.%N)
    set +e
    timeout "$timeout_s" "$@" >/dev/null 2>"$work/err"
    rc=$?
    set -e
    end=$(date +%s.%N)
    local secs
    secs=$(echo "$end - $start" | bc)
    local note
    if [[ $rc == 124 ]]; then
        note="gave up after ${timeout_s} s"
    else
        note=$(head -c 160 "$work/err" | head -n 1)
    fi
    printf '%-28s %10s %8.2f s  exit %-3s %s\n' "$name" "$(du -h "$file" | cut -f1)" "$secs" "$rc" "$note"
}

printf '%-28s %10s %10s  %-8s %s\n' "case" "size" "time" "status" "first line of stderr"
for n in $sizes; do
    jobs_file "$n" "$work/jobs-$n.yaml"
    run_case "jobs=$n, last one bad" "$work/jobs-$n.yaml" \
        "$bin/io-tester" --check-conf "$work/jobs-$n.yaml" --smp 2
done

disks_file 16000 "$work/disks.yaml"
run_case "io-properties, 16000 disks" "$work/disks.yaml" \
    "$bin/ioinfo" --io-properties-file "$work/disks.yaml" --directory /

# ~50 MB of good jobs: 360000 of them.
awk 'BEGIN { for (i = 0; i < 360000; i++) printf "- name: job%d\n  type: randread\n  shards: all\n  data_size: 1GB\n  shard_info:\n    parallelism: 2\n    reqsize: 4kB\n    shares: 100\n    think_time: 10us\n", i }' >"$work/big.yaml"
run_case "job file of ~50 MB" "$work/big.yaml" \
    "$bin/io-tester" --check-conf "$work/big.yaml" --smp 2
