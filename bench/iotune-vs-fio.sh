#!/usr/bin/env bash
# iotune-vs-fio.sh — does our iotune measure what fio measures on the same directory?
#
# Per round: run our iotune (release build) on DIR, read its JSON report, then right after run
# fio with the same settings per phase: request size, in-flight depth per shard (= fio iodepth),
# shards (= fio numjobs, one file each), region per shard (= fio size), ramp and measured time.
# fio's files are first written in full (like iotune's, reads never hit holes). Four figures:
#   write_bandwidth  "sequential write"      read_bandwidth  "sequential read"
#   write_iops       "random write <size>"   read_iops       "random read <size>"
# Each fio job gets the ramp of the matching iotune phase (the sequential write ramps through its warm-up).
# Rounds alternate which tool runs first.
#
# How to read it: the table gives per figure the medians over rounds and the median of the
# per-round ratios iotune/fio (runs back to back, so host drift mostly cancels out).
#   ratio in [0.95, 1.05]  agreement (the goal);
#   ratio < 0.95           we throttle ourselves (engine overhead, too little parallelism);
#   ratio > 1.05           caching, or the settings do not match (check the settings line).
#
# Usage: [ROUNDS=3] [DURATION=20] [SMP=2] [FILE_SIZE=1G] [RAMP=2] bench/iotune-vs-fio.sh [DIR]
set -euo pipefail

DIR=${1:-/var/tmp}
D=${DURATION:-20}
S=${SMP:-2}
F=${FILE_SIZE:-1G}
R=${RAMP:-2}
ROUNDS=${ROUNDS:-3}

die() { echo "iotune-vs-fio: $*" >&2; exit 1; }
command -v fio >/dev/null || die "fio not found (apt-get install fio)"
command -v cargo >/dev/null || die "cargo not found"
command -v python3 >/dev/null || die "python3 not found"
[ -d "$DIR" ] || die "$DIR is not a directory"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(cd "$root" && cargo build --release -p iotune) || die "cargo build failed"
iotune=$root/target/release/iotune
[ -x "$iotune" ] || die "$iotune not found after the build"

work=$(mktemp -d "$DIR/iotune-vs-fio.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# Helper: JSON parsing, medians and formatting.
cat >"$work/helper.py" <<'EOF'
import json, math, statistics as st, sys
FIGS = [("write_bandwidth", "write", "sequential"), ("read_bandwidth", "read", "sequential"),
        ("write_iops", "write", "random"), ("read_iops", "read", "random")]
FIO_RW = {("write", "sequential"): "write", ("read", "sequential"): "read",
          ("write", "random"): "randwrite", ("read", "random"): "randread"}
def fmt(key, v):
    return f"{v / 2**20:.0f} MiB/s" if key.endswith("bandwidth") else f"{v:.0f}"
cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "phases":  # report -> "key rw bs depth jobs region runtime ramp iotune_value"
    phases = [p for p in json.load(open(args[0]))["disks"][0]["phases"]
              if p["name"] != "warm-up" and not p.get("dropped")]
    for key, direction, pattern in FIGS:
        m = [p for p in phases if p["direction"] == direction and p["pattern"] == pattern]
        if not m: sys.exit(f"no {direction} {pattern} phase in the report")
        p = m[-1]
        ramp = round(p["ramp_s"]) or (2 if key == "write_bandwidth" else 0)
        value = p["total"]["bandwidth" if key.endswith("bandwidth") else "iops"]
        print(key, FIO_RW[(direction, pattern)], p["request_size"], p["in_flight_per_shard"],
              p["shards"], p["region_bytes_per_shard"], max(1, math.ceil(p["measure_s"])), ramp, value)
elif cmd == "fill-size":  # what iotune wrote per shard = region of the sequential read phase
    print(next(p["region_bytes_per_shard"] for p in json.load(open(args[0]))["disks"][0]["phases"]
               if p["direction"] == "read" and p["pattern"] == "sequential"))
elif cmd == "fio":  # fio json, key -> value (bytes/s or IOPS)
    j = json.load(open(args[0]))["jobs"][0]["read" if "read" in args[1] else "write"]
    print(j["bw_bytes"] if args[1].endswith("bandwidth") else j["iops"])
else:  # "round N tsv" or "table tsv ROUNDS": tsv lines are "round key iotune fio"
    rows = [l.split() for l in open(args[-1] if cmd == "round" else args[0])]
    if cmd == "round":
        r = [x for x in rows if x[0] == args[0]]
        print(f"round {args[0]}: iotune " + "  ".join(f"{k}={fmt(k, float(i))}" for _, k, i, _ in r)
              + "\n         fio    " + "  ".join(f"{k}={fmt(k, float(f))}" for _, k, _, f in r))
    else:
        print("| figure | iotune (median) | fio (median) | ratio iotune/fio (median) | rounds |")
        print("|---|---|---|---|---|")
        for key, _, _ in FIGS:
            r = [x for x in rows if x[1] == key]
            it, fi = [float(x[2]) for x in r], [float(x[3]) for x in r]
            ratios = [a / b for a, b in zip(it, fi)]
            print(f"| {key} | {fmt(key, st.median(it))} | {fmt(key, st.median(fi))} | "
                  f"{st.median(ratios):.3f} | {len(r)}: " + " ".join(f"{x:.3f}" for x in ratios) + " |")
EOF
helper() { python3 "$work/helper.py" "$@"; }

run_iotune() {  # round -> sets $rep and the phases array
    local round=$1
    rep=$work/iotune.$round.json
    rm -rf "$work/iotune"; mkdir -p "$work/iotune"
    echo "round $round/$ROUNDS: iotune (duration $D s, $S shards, file $F) ..." >&2
    if ! "$iotune" --evaluation-directory "$work/iotune" --duration "$D" --smp "$S" \
        --file-size "$F" --ramp-time "$R" --report "$rep" \
        --properties-file "$work/props.$round.yaml" >"$work/iotune.log" 2>&1; then
        cat "$work/iotune.log" >&2
        die "iotune failed in round $round (output above)"
    fi
    mapfile -t phases < <(helper phases "$rep") || die "cannot read the phases of $rep"
    [ "${#phases[@]}" -eq 4 ] || die "expected 4 phases in $rep"
}

run_fio() {  # round -> "key fio_value" lines in $work/fio.$round.tsv, with the settings of $rep
    local round=$1 sub=$work/fio.$round
    mkdir -p "$sub"
    fill=$(helper fill-size "$rep")
    common=(--name=fill --directory="$sub" --nrfiles=1 --direct=1 --ioengine=io_uring --thread
            --refill_buffers)
    echo "round $round/$ROUNDS: fio (fill $S x $fill bytes, then 4 jobs) ..." >&2
    fio "${common[@]}" --numjobs="$S" --size="$fill" --rw=write --bs=1M --iodepth=4 \
        --output-format=json --output="$sub/fill.json" || die "fio fill failed"
    : >"$work/fio.$round.tsv"
    for line in "${phases[@]}"; do
        read -r key rw bs depth jobs region runtime ramp _ <<<"$line"
        out=$sub/$key.json
        fio "${common[@]}" --rw="$rw" --bs="$bs" --iodepth="$depth" --numjobs="$jobs" \
            --size="$region" --group_reporting --time_based --runtime="$runtime" \
            --ramp_time="$ramp" --norandommap --randrepeat=0 --output-format=json \
            --output="$out" || die "fio $rw failed (bs $bs, depth $depth, jobs $jobs)"
        echo "$key $(helper fio "$out" "$key")" >>"$work/fio.$round.tsv"
    done
    rm -rf "$sub"
}

# The disk drifts: alternate which tool goes first (even rounds run fio first, with the
# previous round's iotune settings), so neither always meets the host's cache in one state.
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 0 ]; then
        run_fio "$round"
        run_iotune "$round"
    else
        run_iotune "$round"
        run_fio "$round"
    fi
    for line in "${phases[@]}"; do
        read -r key _ _ _ _ _ _ _ value <<<"$line"
        echo "$round $key $value $(awk -v k="$key" '$1 == k { print $2 }' "$work/fio.$round.tsv")" >>"$work/rounds.tsv"
    done
    helper round "$round" "$work/rounds.tsv"
done

# --- summary ---
echo
helper table "$work/rounds.tsv"
echo
settings=$(for line in "${phases[@]}"; do
    read -r key rw bs depth jobs region runtime ramp _ <<<"$line"
    printf '%s bs=%s depth=%s jobs=%s size=%s runtime=%ss ramp=%ss; ' \
        "$rw" "$bs" "$depth" "$jobs" "$region" "$runtime" "$ramp"
done)
echo "Settings: dir=$DIR fs=$(findmnt -no FSTYPE,SOURCE -T "$DIR" | tr -s ' ') duration=${D}s" \
    "smp=$S file-size=$F ramp=${R}s rounds=$ROUNDS; per phase (last round): ${settings%; }"
echo "Note: each fio job used the ramp of the matching iotune phase (sequential write: the warm-up, max(3 s, 5% of D))."
