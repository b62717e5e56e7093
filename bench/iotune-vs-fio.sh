#!/usr/bin/env bash
# iotune-vs-fio.sh — does our iotune measure what fio measures on the same directory?
#
# Per round: run our iotune (release build) on DIR, read its JSON report, then right after run
# fio with the same settings per phase: request size, in-flight depth per shard (= fio iodepth),
# shards (= fio numjobs, one file each), region per shard (= fio size), ramp and measured time.
# fio's sequential write creates its files, sparse, as iotune's does; they are completed if it
# did not cover them, so reads never hit holes. Four figures:
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
# Same requests at the disk, not just in the job file (the disk's stat counters are printed per
# tool and phase, as average request size):
#   - fio's buffers come from huge pages (--iomem=mmaphuge; the script reserves hugetlb pages
#     and gives them back), as iotune's do: over scattered 4 KiB pages a 1 MiB request needs
#     more segments than most disks take and reaches them split in two;
#   - block-layer merging is turned off on the disk for the run (nomerges=2, restored at exit;
#     KEEP_MERGES=1 leaves it): iotune submits in batches, which lets the kernel join adjacent
#     sequential requests, fio submits one at a time;
#   - fio scrambles its buffers per write (its default), as iotune stamps each 4 KiB block; fio's
#     --refill_buffers would regenerate them, which halved fio's 1 MiB write bandwidth here.
# Changing hugetlb pages and nomerges needs root; without it the script warns and goes on.
#
# Usage: [ROUNDS=3] [DURATION=20] [SMP=2] [FILE_SIZE=1G] [RAMP=2] [KEEP_MERGES=1] bench/iotune-vs-fio.sh [DIR]
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
restore=()
cleanup() {
    rm -rf "$work"
    for r in "${restore[@]}"; do eval "$r" || true; done
}
trap cleanup EXIT

# The disk under DIR (a partition's stats count its requests; its queue is the parent's).
src=$(findmnt -no SOURCE -T "$DIR" | sed 's|^/dev/||')
disk=$(lsblk -ndo PKNAME "/dev/$src" 2>/dev/null || true)
disk=${disk:-$src}
stat_file=/sys/class/block/$src/stat
[ -r "$stat_file" ] || stat_file=""
nomerges=/sys/block/$disk/queue/nomerges
if [ -z "${KEEP_MERGES:-}" ] && [ -w "$nomerges" ]; then
    old=$(cat "$nomerges")
    if [ "$old" != 2 ]; then
        restore+=("echo $old > $nomerges")
        echo 2 >"$nomerges"
        echo "iotune-vs-fio: merging off on $disk for the run (nomerges $old -> 2, restored at exit)" >&2
    fi
elif [ -z "${KEEP_MERGES:-}" ]; then
    echo "iotune-vs-fio: WARN: cannot set $nomerges (not root?): batched iotune requests may merge, fio's will not" >&2
fi
hp=/proc/sys/vm/nr_hugepages
fio_mem=(--iomem=mmaphuge)
if [ "$(awk '/HugePages_Free/ { print $2 }' /proc/meminfo)" -lt 64 ]; then
    if [ -w "$hp" ]; then
        old=$(cat "$hp")
        restore+=("echo $old > $hp")
        echo $((old + 64)) >"$hp"
    fi
    if [ "$(awk '/HugePages_Free/ { print $2 }' /proc/meminfo)" -lt 64 ]; then
        echo "iotune-vs-fio: WARN: no hugetlb pages for fio (not root?): fio's large requests may reach the disk split" >&2
        fio_mem=()
    fi
fi

# Disk counters "read_requests read_sectors write_requests write_sectors" (zeros if unknown).
devstat() { if [ -n "$stat_file" ]; then awk '{ print $1, $3, $5, $7 }' "$stat_file"; else echo 0 0 0 0; fi; }
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
        dev = p.get("device_requests") or [{"average_request_bytes": 0}]
        print(key, FIO_RW[(direction, pattern)], p["request_size"], p["in_flight_per_shard"],
              p["shards"], p["region_bytes_per_shard"], max(1, math.ceil(p["measure_s"])), ramp, value,
              dev[0]["average_request_bytes"])
elif cmd == "fill-size":  # what iotune wrote per shard = region of the sequential read phase
    print(next(p["region_bytes_per_shard"] for p in json.load(open(args[0]))["disks"][0]["phases"]
               if p["direction"] == "read" and p["pattern"] == "sequential"))
elif cmd == "fio":  # fio json, key -> value (bytes/s or IOPS)
    j = json.load(open(args[0]))["jobs"][0]["read" if "read" in args[1] else "write"]
    print(j["bw_bytes"] if args[1].endswith("bandwidth") else j["iops"])
elif cmd == "avgreq":  # key + devstat before + devstat after -> average request bytes
    key, c = args[0], [int(x) for x in args[1:]]
    i = 2 if key.startswith("write") else 0
    n, sectors = c[4 + i] - c[i], c[5 + i] - c[1 + i]
    print(sectors * 512 // n if n else 0)
else:  # "round N tsv" or "table tsv": tsv lines are "round key iotune fio iotune_req fio_req"
    rows = [l.split() for l in open(args[-1] if cmd == "round" else args[0])]
    if cmd == "round":
        r = [x for x in rows if x[0] == args[0]]
        print(f"round {args[0]}: iotune " + "  ".join(f"{x[1]}={fmt(x[1], float(x[2]))}" for x in r)
              + "\n         fio    " + "  ".join(f"{x[1]}={fmt(x[1], float(x[3]))}" for x in r))
    else:
        print("| figure | iotune (median) | fio (median) | ratio iotune/fio (median) | rounds | "
              "bytes per disk request, iotune / fio (median) |")
        print("|---|---|---|---|---|---|")
        for key, _, _ in FIGS:
            r = [x for x in rows if x[1] == key]
            it, fi = [float(x[2]) for x in r], [float(x[3]) for x in r]
            ratios = [a / b for a, b in zip(it, fi)]
            req = " / ".join(f"{st.median(int(x[j]) for x in r):.0f}" for j in (4, 5))
            print(f"| {key} | {fmt(key, st.median(it))} | {fmt(key, st.median(fi))} | "
                  f"{st.median(ratios):.3f} | {len(r)}: " + " ".join(f"{x:.3f}" for x in ratios)
                  + f" | {req} |")
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

run_fio() {  # round -> "key fio_value avg_request" lines in $work/fio.$round.tsv, with the settings of $rep
    local round=$1 sub=$work/fio.$round
    mkdir -p "$sub"
    fill=$(helper fill-size "$rep")
    common=(--name=fill --directory="$sub" --nrfiles=1 --direct=1 --ioengine=io_uring --thread
            "${fio_mem[@]}")
    echo "round $round/$ROUNDS: fio (4 jobs; the sequential write creates $S files) ..." >&2
    : >"$work/fio.$round.tsv"
    for line in "${phases[@]}"; do
        read -r key rw bs depth jobs region runtime ramp _ <<<"$line"
        out=$sub/$key.json
        # Like iotune's, the sequential write starts on new sparse files (no fallocate).
        extra=()
        [ "$key" = write_bandwidth ] && extra=(--fallocate=none)
        before=$(devstat)
        fio "${common[@]}" "${extra[@]}" --rw="$rw" --bs="$bs" --iodepth="$depth" --numjobs="$jobs" \
            --size="$region" --group_reporting --time_based --runtime="$runtime" \
            --ramp_time="$ramp" --norandommap --randrepeat=0 --output-format=json \
            --output="$out" || die "fio $rw failed (bs $bs, depth $depth, jobs $jobs)"
        echo "$key $(helper fio "$out" "$key") $(helper avgreq "$key" $before $(devstat))" >>"$work/fio.$round.tsv"
        if [ "$key" = write_bandwidth ]; then
            # Reads must not hit holes: complete the files if the timed write did not cover them.
            for f in "$sub"/fill.*; do
                if [ $(($(stat -c %b "$f") * 512)) -lt "$fill" ]; then
                    echo "round $round/$ROUNDS: fio's write left holes; writing $S x $fill bytes" >&2
                    fio "${common[@]}" --numjobs="$S" --size="$fill" --rw=write --bs=1M --iodepth=4 \
                        --output-format=json --output="$sub/fill.json" || die "fio fill failed"
                    break
                fi
            done
        fi
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
        read -r key _ _ _ _ _ _ _ value req <<<"$line"
        read -r fio_value fio_req < <(awk -v k="$key" '$1 == k { print $2, $3 }' "$work/fio.$round.tsv")
        echo "$round $key $value $fio_value $req $fio_req" >>"$work/rounds.tsv"
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
