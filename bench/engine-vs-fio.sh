#!/usr/bin/env bash
# io-tester's engine against fio (io_uring, O_DIRECT), back to back on the same file:
# 4 KiB random reads at depth 64 per shard/job, with 1 and 2 shards (fio: 1 and 2 jobs),
# ROUNDS rounds on /dev/shm (where the "device" costs almost nothing, so per-request CPU
# cost decides), then one round on the work disk (DISK_DIR, default /var/tmp; the ratio
# should be near 1.0 there, since the disk decides).
#
# Prints per round the IOPS of both and, at the end, a table of median IOPS ratios
# (io-tester / fio) and CPU seconds per million requests for both. Goal: ratio >= 1.1 on one
# shard on /dev/shm. io-tester runs without io-properties (unconfigured scheduler: zero cost).
#
# Usage: bench/engine-vs-fio.sh            (ROUNDS=3 DURATION=5 SIZE_MB=256 DISK_DIR=/var/tmp)
set -euo pipefail
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
SIZE_MB=${SIZE_MB:-256}
DISK_DIR=${DISK_DIR:-/var/tmp}
root=$(cd "$(dirname "$0")/.." && pwd)
command -v fio >/dev/null || { echo "fio is missing: apt-get install fio" >&2; exit 1; }
command -v cargo >/dev/null || { echo "cargo is missing" >&2; exit 1; }
[ -d /dev/shm ] || { echo "/dev/shm is missing" >&2; exit 1; }
(cd "$root" && cargo build --release -q -p io-tester)
bin="$root/target/release/io-tester"

work=$(mktemp -d)
shm=$(mktemp -d /dev/shm/engine-vs-fio.XXXXXX)
disk=$(mktemp -d "$DISK_DIR/engine-vs-fio.XXXXXX")
trap 'rm -rf "$work" "$shm" "$disk"' EXIT INT TERM

python3 - "$bin" "$shm" "$disk" "$work" "$ROUNDS" "$DURATION" "$SIZE_MB" <<'PY'
import json, statistics, subprocess, sys
bin_, shm, disk, work, rounds, duration, size_mb = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])

def fio(directory, jobs):
    # fio's files (x.J.0) are laid out once by its own fill; then the measured job reads them.
    common = ["--name=x", f"--directory={directory}", f"--size={size_mb}M", "--direct=1", "--ioengine=io_uring",
              f"--numjobs={jobs}", "--thread", "--group_reporting"]
    subprocess.run(["fio", *common, "--rw=write", "--bs=1M", "--iodepth=4"], check=True, capture_output=True)
    out = subprocess.run(["fio", *common, "--rw=randread", "--bs=4k", "--iodepth=64", "--time_based",
                          f"--runtime={duration}", "--norandommap", "--randrepeat=0", "--output-format=json"],
                         check=True, capture_output=True, text=True).stdout
    j = json.loads(out[out.index("{"):])["jobs"][0]
    iops = j["read"]["iops"]
    cpu = (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * duration * jobs
    return iops, cpu / (iops * duration / 1e6)

def io_tester(directory, shards):
    conf = f"{work}/conf.yaml"
    with open(conf, "w") as f:
        f.write(f"- name: r\n  shards: all\n  type: randread\n  data_size: {size_mb * shards}MB\n"
                "  shard_info: {parallelism: 64, reqsize: 4kB}\n")
    out = subprocess.run([bin_, "--storage", directory, "--conf", conf, "--duration", str(duration),
                          "--smp", str(shards), "--output-format", "json"], check=True, capture_output=True, text=True).stdout
    s = json.loads(out)
    iops = sum(sh["jobs"][0]["IOPS"] for sh in s)
    cpu = sum(sh["cpu_seconds"] for sh in s)
    return iops, cpu / (iops * duration / 1e6)

rows = []
for where, directory, n in [("/dev/shm", shm, rounds), ("work disk", disk, 1)]:
    for shards in (1, 2):
        ratios, ours, theirs, cpu_ours, cpu_theirs = [], [], [], [], []
        for r in range(n):
            t_iops, t_cpu = fio(directory, shards)
            o_iops, o_cpu = io_tester(directory, shards)
            subprocess.run(f"rm -f {directory}/x.*", shell=True)
            print(f"{where} shards={shards} round {r + 1}: io-tester {o_iops:.0f} IOPS ({o_cpu:.2f} CPU s/M req), "
                  f"fio {t_iops:.0f} IOPS ({t_cpu:.2f} CPU s/M req), ratio {o_iops / t_iops:.3f}", flush=True)
            ratios.append(o_iops / t_iops); ours.append(o_iops); theirs.append(t_iops)
            cpu_ours.append(o_cpu); cpu_theirs.append(t_cpu)
        m = statistics.median
        rows.append((where, shards, n, m(ours), m(theirs), m(ratios), m(cpu_ours), m(cpu_theirs)))

print()
print("| storage | shards/jobs | rounds | io-tester IOPS | fio IOPS | ratio (median) | io-tester CPU s / M req | fio CPU s / M req |")
print("|---|---|---|---|---|---|---|---|")
for where, shards, n, o, t, r, co, ct in rows:
    print(f"| {where} | {shards} | {n} | {o:.0f} | {t:.0f} | {r:.3f} | {co:.2f} | {ct:.2f} |")
print(f"\n4 KiB random reads, depth 64 per shard/job, {duration} s runs, {size_mb} MiB per shard/job; "
      "io-tester unconfigured (zero-cost scheduler).")
PY
