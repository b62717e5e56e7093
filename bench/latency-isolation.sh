#!/usr/bin/env bash
# Latency isolation on a device whose capacity is known: a cgroup v1 blkio throttle on the disk
# under DIR, with io-properties equal to its limits. A 4 KiB random-read query class (1000
# shares) beside a 128 KiB sequential-read compaction class (100 shares), through
#   1. the storage-engine example (tokio, admission permits, pread on O_DIRECT files), and
#   2. io-tester's equivalent job file (fibers on the Ring driver),
# each with the scheduler (io-properties) and without; prints every run's table and, per tool,
# the query p99 ratio (with / without) and the split of disk time between the classes.
#
# Usage (root): bench/latency-isolation.sh [DIR]   (default /var/tmp)
# Environment: DURATION (s, default 10), QUERY_DEPTH (default 8), COMPACTION_DEPTH (32),
#   READ_BPS, WRITE_BPS (bytes/s, default 80 MiB/s and 60 MiB/s), READ_IOPS, WRITE_IOPS
#   (default 3000, 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-/var/tmp}"
DURATION="${DURATION:-10}"
QUERY_DEPTH="${QUERY_DEPTH:-8}"
COMPACTION_DEPTH="${COMPACTION_DEPTH:-32}"
READ_BPS="${READ_BPS:-83886080}"
WRITE_BPS="${WRITE_BPS:-62914560}"
READ_IOPS="${READ_IOPS:-3000}"
WRITE_IOPS="${WRITE_IOPS:-2000}"

if [ "$(id -u)" != 0 ]; then
  echo "latency-isolation: needs root (it creates a blkio cgroup)" >&2
  exit 2
fi
if [ ! -e /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device ]; then
  echo "latency-isolation: no cgroup v1 blkio controller at /sys/fs/cgroup/blkio" >&2
  exit 2
fi
for tool in jq findmnt; do
  command -v "$tool" >/dev/null || { echo "latency-isolation: needs $tool" >&2; exit 2; }
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p scheduler --features tokio --example storage_engine
cargo build --release -q -p io-tester
ENGINE="$CARGO_TARGET_DIR/release/examples/storage_engine"
IO_TESTER="$CARGO_TARGET_DIR/release/io-tester"

# The whole disk under DIR (blkio throttles whole disks, not partitions).
majmin=$(findmnt -no MAJ:MIN -T "$DIR" | head -1 | tr -d ' ')
if [ -e "/sys/dev/block/$majmin/partition" ]; then
  majmin=$(cat "$(readlink -f "/sys/dev/block/$majmin")/../dev")
fi
mountpoint=$(findmnt -no TARGET -T "$DIR" | head -1)

work=$(mktemp -d)
cg="/sys/fs/cgroup/blkio/latency-isolation-$$"
cleanup() {
  if [ -d "$cg" ]; then
    for f in read_bps_device write_bps_device read_iops_device write_iops_device; do
      echo "$majmin 0" > "$cg/blkio.throttle.$f" 2>/dev/null || true
    done
    rmdir "$cg" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$cg"
echo "$majmin $READ_BPS" > "$cg/blkio.throttle.read_bps_device"
echo "$majmin $WRITE_BPS" > "$cg/blkio.throttle.write_bps_device"
echo "$majmin $READ_IOPS" > "$cg/blkio.throttle.read_iops_device"
echo "$majmin $WRITE_IOPS" > "$cg/blkio.throttle.write_iops_device"

cat > "$work/io-properties.yaml" <<EOF
disks:
  - mountpoint: $mountpoint
    read_iops: $READ_IOPS
    read_bandwidth: $READ_BPS
    write_iops: $WRITE_IOPS
    write_bandwidth: $WRITE_BPS
EOF
cat > "$work/jobs.yaml" <<EOF
- name: query
  shards: all
  type: randread
  data_size: 256MB
  shard_info:
    parallelism: $QUERY_DEPTH
    reqsize: 4kB
    shares: 1000
- name: compaction
  shards: all
  type: seqread
  data_size: 256MB
  shard_info:
    parallelism: $COMPACTION_DEPTH
    reqsize: 128kB
    shares: 100
EOF

echo "device $majmin (throttled: read $READ_BPS B/s, $READ_IOPS IOPS; write $WRITE_BPS B/s, $WRITE_IOPS IOPS); $DURATION s per run"
echo
echo "== storage-engine example (tokio, admission permits, pread on O_DIRECT files) =="
engine() {
  "$ENGINE" --dir "$DIR" --duration "$DURATION" --file-size 256M --compaction read \
    --query-depth "$QUERY_DEPTH" --compaction-depth "$COMPACTION_DEPTH" --cgroup "$cg" "$@"
}
engine --io-properties-file "$work/io-properties.yaml" --json > "$work/engine-on.json"
engine --no-scheduler --json > "$work/engine-off.json"
for f in on off; do
  jq -r '"scheduler \(if .scheduler then "on " else "off" end): " + ([.classes[] |
    "\(.name) \(.iops|floor) IOPS \((.bandwidth_bytes_per_sec/1048576*10|floor)/10) MiB/s p50 \((.latency_us.p50/10|floor)/100) ms p99 \((.latency_us.p99/10|floor)/100) ms p999 \((.latency_us.p999/10|floor)/100) ms" + (if .consumption_sec then " disk time \((.consumption_sec*1000|floor)/1000) s" else "" end)] | join("; "))' \
    "$work/engine-$f.json"
done
jq -rn --slurpfile on "$work/engine-on.json" --slurpfile off "$work/engine-off.json" '
  ($on[0].classes[] | select(.name=="query") | .latency_us.p99) as $a |
  ($off[0].classes[] | select(.name=="query") | .latency_us.p99) as $b |
  ($on[0].classes[] | select(.name=="query") | .consumption_sec) as $q |
  ($on[0].classes[] | select(.name=="compaction") | .consumption_sec) as $c |
  "query p99 with / without the scheduler: \(($a/$b*1000|floor)/1000); disk time query : compaction = \(($q/$c*100|floor)/100) (shares 10 : 1)"'

echo
echo "== io-tester (fibers on the Ring driver), the same job =="
io_tester() {
  sh -c 'echo $$ > "$0/cgroup.procs" && shift && exec "$@"' "$cg" x \
    "$IO_TESTER" --storage "$DIR" --conf "$work/jobs.yaml" --duration "$DURATION" --smp 1 \
    --output-format json "$@"
}
io_tester --io-properties-file "$work/io-properties.yaml" > "$work/tester-on.json"
io_tester > "$work/tester-off.json"
for f in on off; do
  jq -r --arg f "$f" '"scheduler \($f): " + ([.[0].jobs[] |
    "\(.name) \(.IOPS|floor) IOPS p50 \((.latencies["p0.5"]/10|floor)/100) ms p99 \((.latencies["p0.99"]/10|floor)/100) ms p999 \((.latencies["p0.999"]/10|floor)/100) ms disk time \((.stats.io_queue_consumption*1000|floor)/1000) s"] | join("; "))' \
    "$work/tester-$f.json"
done
jq -rn --slurpfile on "$work/tester-on.json" --slurpfile off "$work/tester-off.json" '
  ($on[0][0].jobs[] | select(.name=="query") | .latencies["p0.99"]) as $a |
  ($off[0][0].jobs[] | select(.name=="query") | .latencies["p0.99"]) as $b |
  ($on[0][0].jobs[] | select(.name=="query") | .stats.io_queue_consumption) as $q |
  ($on[0][0].jobs[] | select(.name=="compaction") | .stats.io_queue_consumption) as $c |
  "query p99 with / without the scheduler: \(($a/$b*1000|floor)/1000); disk time query : compaction = \(($q/$c*100|floor)/100) (shares 10 : 1; io-tester counts the drain after the run too)"'
