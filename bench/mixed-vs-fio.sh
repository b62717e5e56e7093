#!/usr/bin/env bash
# mixed-vs-fio.sh — does each point of iotune's --mixed frontier match fio running the same pair?
#
# Per round: run our iotune (release build) with --mixed on DIR and read its JSON report; then,
# for each of its six points, run fio with the same pair right after: per shard one random-read
# job and one sequential-write job on the same file (as iotune: 2 x SMP jobs, file i shared by
# read job i and write job i), the same request sizes, depths, ramp and measured time, and on
# the paced side fio's open-loop pacing at the rate iotune paced it at (`rate_iops=` for
# reads, `rate=` bytes/s for writes, per job = iotune's rate / SMP). The other side runs flat
# out. Printed per point: both tools' reads (IOPS) and writes (MiB/s), and the ratios
# iotune/fio; then the time --mixed took (the report's mixed.elapsed_s).
#
# fio runs with its best-effort flags for fast devices (fixedbufs, registerfiles, batched
# submission and completion), as in shared/reference/test-environment.md.
#
# How to read it: the free side's ratio is the one that tests the measurement (the paced side
# must be ~1.00 on both, or the pacing differs). Within [0.9, 1.1]: agreement on this noisy
# shared disk; compare ratios, not absolute figures across runs.
#
# THROTTLE=1 runs both tools inside a cgroup v1 blkio throttle on DIR's disk with the e2e
# tests' known limits (reads 3000 IOPS / 80 MiB/s, writes 2000 IOPS / 60 MiB/s; root).
#
# Usage: [ROUNDS=1] [DURATION=20] [SMP=2] [FILE_SIZE=256M] [RAMP=1] [THROTTLE=1] bench/mixed-vs-fio.sh [DIR]
set -euo pipefail

DIR=${1:-/var/tmp}
D=${DURATION:-20}
S=${SMP:-2}
F=${FILE_SIZE:-256M}
R=${RAMP:-1}
ROUNDS=${ROUNDS:-1}

die() { echo "mixed-vs-fio: $*" >&2; exit 1; }
command -v fio >/dev/null || die "fio not found (apt-get install fio)"
command -v cargo >/dev/null || die "cargo not found"
command -v python3 >/dev/null || die "python3 not found"
[ -d "$DIR" ] || die "$DIR is not a directory"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(cd "$root" && cargo build --release -p iotune) || die "cargo build failed"
iotune=$root/target/release/iotune

work=$(mktemp -d "$DIR/mixed-vs-fio.XXXXXX")
out=$(mktemp -d /tmp/mixed-vs-fio.XXXXXX)
cg=""
cleanup() {
    rm -rf "$work"
    if [ -n "$cg" ]; then
        for f in read_bps_device write_bps_device read_iops_device write_iops_device; do
            echo "$dev 0" >"$cg/blkio.throttle.$f" || true
        done
        rmdir "$cg" || true
    fi
}
trap cleanup EXIT

inside=()
if [ -n "${THROTTLE:-}" ]; then
    [ -w /sys/fs/cgroup/blkio ] || die "THROTTLE=1 needs root and cgroup v1 blkio"
    src=$(findmnt -no SOURCE -T "$DIR" | sed 's|^/dev/||')
    disk=$(lsblk -ndo PKNAME "/dev/$src" 2>/dev/null || true)
    dev=$(cat "/sys/class/block/${disk:-$src}/dev")
    cg=/sys/fs/cgroup/blkio/mixed-vs-fio-$$
    mkdir "$cg"
    echo "$dev $((80 << 20))" >"$cg/blkio.throttle.read_bps_device"
    echo "$dev $((60 << 20))" >"$cg/blkio.throttle.write_bps_device"
    echo "$dev 3000" >"$cg/blkio.throttle.read_iops_device"
    echo "$dev 2000" >"$cg/blkio.throttle.write_iops_device"
    inside=(sh -c "echo \$\$ > $cg/cgroup.procs && exec \"\$@\"" sh)
    echo "mixed-vs-fio: both tools run throttled on $dev (reads 3000 IOPS / 80 MiB/s, writes 2000 IOPS / 60 MiB/s)" >&2
fi

for round in $(seq 1 "$ROUNDS"); do
    report=$out/iotune-$round.json
    echo "mixed-vs-fio: round $round: iotune --mixed" >&2
    start=$(date +%s.%N)
    "${inside[@]}" "$iotune" --evaluation-directory "$work" --duration "$D" --smp "$S" \
        --file-size "$F" --ramp-time "$R" --mixed --report "$report" \
        --properties-file "$out/props-$round.yaml" >/dev/null 2>"$out/iotune-$round.err" \
        || { cat "$out/iotune-$round.err" >&2; die "iotune failed"; }
    end=$(date +%s.%N)
    echo "mixed-vs-fio: iotune took $(python3 -c "print(f'{$end - $start:.1f}')") s in all" >&2

    # fio's files: written in full first, so reads never hit holes.
    for i in $(seq 0 $((S - 1))); do
        fio --name=fill --filename="$work/f$i" --size="$F" --rw=write --bs=1M --direct=1 \
            --ioengine=io_uring --iodepth=8 --output=/dev/null
    done

    # One fio run per point, from the report's settings.
    python3 - "$report" "$work" "$S" "$R" "$out" "$round" <<'EOF'
import json, sys
report, work, shards, ramp, out, rnd = sys.argv[1:7]
shards = int(shards)
r = json.load(open(report))
d = r["disks"][0]
m = d["mixed"]
c = m["corners"]
phases = {p["name"]: p for p in d["phases"]}
for k, p in enumerate(m["points"]):
    who = "reads" if p["paced"] == "read" else "writes"
    name = f"mixed: {who} paced at {p['pace_fraction'] * 100:.0f}%"
    rp, wp = phases[name + ": reads"], phases[name + ": writes"]
    lines = ["[global]", "direct=1", "ioengine=io_uring", "thread", "time_based",
             f"runtime={m['point_measure_s']:.0f}", f"ramp_time={ramp}", "norandommap",
             "randrepeat=0", f"size={rp['region_bytes_per_shard']}",
             # fio's best effort on a fast device (shared/reference/test-environment.md).
             "fixedbufs", "registerfiles", "iodepth_batch_submit=32",
             "iodepth_batch_complete_min=1", "iodepth_batch_complete_max=32"]
    for i in range(shards):
        lines += [f"[r{i}]", f"filename={work}/f{i}", "rw=randread",
                  f"bs={c['read_request_size']}", f"iodepth={rp['in_flight_per_shard']}"]
        if p["paced"] == "read":
            lines.append(f"rate_iops={c['read_iops'] * p['pace_fraction'] / shards:.0f}")
        lines += [f"[w{i}]", f"filename={work}/f{i}", "rw=write",
                  f"bs={c['write_request_size']}", f"iodepth={wp['in_flight_per_shard']}"]
        if p["paced"] == "write":
            lines.append(f"rate={c['write_bandwidth'] * p['pace_fraction'] / shards:.0f}")
    open(f"{out}/point-{rnd}-{k}.fio", "w").write("\n".join(lines) + "\n")
EOF
    for k in 0 1 2 3 4 5; do
        "${inside[@]}" fio --output-format=json --output="$out/fio-$round-$k.json" "$out/point-$round-$k.fio"
    done
done

python3 - "$out" "$ROUNDS" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
MIB = 1 << 20
rows = {}
took = []
for rnd in range(1, rounds + 1):
    m = json.load(open(f"{out}/iotune-{rnd}.json"))["disks"][0]["mixed"]
    took.append(m["elapsed_s"])
    for k, p in enumerate(m["points"]):
        jobs = json.load(open(f"{out}/fio-{rnd}-{k}.json"))["jobs"]
        fr = sum(j["read"]["iops"] for j in jobs if j["jobname"].startswith("r"))
        fw = sum(j["write"]["bw_bytes"] for j in jobs if j["jobname"].startswith("w"))
        key = f"{p['paced']}s paced at {p['pace_fraction'] * 100:.0f}%"
        rows.setdefault(key, []).append((p["read_iops"], fr, p["write_bandwidth"] / MIB, fw / MIB))
print(f"{'point':<24} {'iotune r IOPS':>13} {'fio r IOPS':>11} {'ratio':>6} "
      f"{'iotune w MiB/s':>14} {'fio w MiB/s':>11} {'ratio':>6}")
for key, v in rows.items():
    med = lambda i: statistics.median(x[i] for x in v)
    rr = statistics.median(x[0] / x[1] if x[1] else float("nan") for x in v)
    wr = statistics.median(x[2] / x[3] if x[3] else float("nan") for x in v)
    print(f"{key:<24} {med(0):>13.0f} {med(1):>11.0f} {rr:>6.3f} {med(2):>14.1f} {med(3):>11.1f} {wr:>6.3f}")
print(f"--mixed took {statistics.median(took):.1f} s (median of {rounds} round(s), report mixed.elapsed_s)")
EOF
