#!/bin/sh
# compare.sh: measure two peerchat binaries with the same benchmark code, one after the other.
#
#   compare.sh [options] BEFORE_BIN AFTER_BIN
#
# For each binary (PEERCHAT_BIN=...): the fan-out benchmark with --repeat 3 (peerchat only:
# ncat is the same program both times), then the idle-cost benchmark with --repeat 3.
# Outputs go to target/bench-compare/<UTC time>[-LABEL]/ in the checkout : fanout-before-R.txt,
# fanout-after-R.txt, idle-before-R.txt, idle-after-R.txt for each round R, and summary.txt (the
# medians side by side, the machine, its load). Nothing is asserted: read the figures. The hub's
# CPU per delivery (fan-out) and CPU-ms per second (idle) hold up best on a busy machine;
# wall-time rates do not. To see what noise is, compare a binary with itself (A/A) once.
#
# Options:
#   --only NAME       only this fan-out scenario (e.g. burst-64B-N10); default: all of them
#   --quick           the fan-out benchmark's small scenarios only
#   --repeat N        runs per binary for both benchmarks (default 3)
#   --with-ncat       also run ncat in the fan-out benchmark (the README's reference)
#   --rounds N        run the pair N times, before and after taking turns (default 1), so
#                     that a change in the machine's load falls on both
#   --no-fanout       skip the fan-out benchmark
#   --no-idle         skip the idle benchmark
#   --idle-args "…"   extra arguments for the idle benchmark (e.g. "--conns 200 --window 2")
#   --label NAME      appended to the output folder's name
#   --repo DIR        the checkout whose benches/ to build and run (default: the one holding
#                     this script)
#
# Examples:
#   git worktree add /tmp/before dd2f049 && (cd /tmp/before && cargo build --release)
#   cargo build --release
#   benches/compare.sh /tmp/before/target/release/peerchat target/release/peerchat
#   benches/compare.sh --only burst-64B-N10 --idle-args "--conns 200 --window 2" \
#       --label smoke target/release/peerchat target/release/peerchat      # A/A: the noise

set -eu

only=""
quick=""
repeat=3
rounds=1
ncat="--no-ncat"
fanout=yes
idle=yes
idle_args=""
label=""
repo=""

usage() {
    sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --only) only="$2"; shift 2 ;;
        --quick) quick="--quick"; shift ;;
        --repeat) repeat="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --with-ncat) ncat=""; shift ;;
        --no-fanout) fanout=no; shift ;;
        --no-idle) idle=no; shift ;;
        --idle-args) idle_args="$2"; shift 2 ;;
        --label) label="-$2"; shift 2 ;;
        --repo) repo="$2"; shift 2 ;;
        -h|--help) usage ;;
        --*) echo "compare.sh: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -eq 2 ] || usage
before=$(realpath "$1")
after=$(realpath "$2")
for bin in "$before" "$after"; do
    if [ ! -x "$bin" ]; then
        echo "compare.sh: $bin is not an executable" >&2
        exit 2
    fi
done

if [ -z "$repo" ]; then
    repo=$(cd "$(dirname "$0")/.." && pwd)
fi
[ -f "$repo/benches/idle.rs" ] || { echo "compare.sh: no benches/idle.rs in $repo" >&2; exit 2; }

out="$repo/target/bench-compare/$(date -u +%Y%m%dT%H%M%SZ)$label"
mkdir -p "$out"
summary="$out/summary.txt"

machine() {
    echo "# $(date -u +%FT%TZ)  nproc $(nproc)  uname -r $(uname -r)"
    echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"
}

{
    echo "# compare.sh in $repo ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo "# before: $before  sha256 $(sha256sum "$before" | cut -d' ' -f1)"
    echo "# after:  $after  sha256 $(sha256sum "$after" | cut -d' ' -f1)"
    machine
} > "$summary"

# Build the benchmarks once, before anything is timed.
(cd "$repo" && cargo bench --no-run --bench fanout --bench idle) > "$out/build.txt" 2>&1 || {
    echo "compare.sh: building the benchmarks failed, see $out/build.txt" >&2
    exit 1
}

run_bench() { # which bench, binary, file, args...
    bench=$1; bin=$2; file=$3; shift 3
    echo "== $bench with $bin -> $file"
    {
        echo "\$ PEERCHAT_BIN=$bin cargo bench --bench $bench -- $*"
        machine
        (cd "$repo" && PEERCHAT_BIN="$bin" cargo bench -q --bench "$bench" -- "$@") 2>&1 || \
            echo "(exit status $?)"
        machine
    } > "$file"
}

round=1
while [ "$round" -le "$rounds" ]; do
    if [ "$fanout" = yes ]; then
        set -- --repeat "$repeat"
        [ -n "$ncat" ] && set -- "$@" "$ncat"
        [ -n "$quick" ] && set -- "$@" "$quick"
        [ -n "$only" ] && set -- "$@" --only "$only"
        run_bench fanout "$before" "$out/fanout-before-$round.txt" "$@"
        run_bench fanout "$after" "$out/fanout-after-$round.txt" "$@"
    fi
    if [ "$idle" = yes ]; then
        # shellcheck disable=SC2086 # the extra arguments are meant to be split
        set -- --repeat "$repeat" $idle_args
        run_bench idle "$before" "$out/idle-before-$round.txt" "$@"
        run_bench idle "$after" "$out/idle-after-$round.txt" "$@"
    fi
    round=$((round + 1))
done

# The medians (or the single run's row) of each scenario, before and after.
pick() { # file: scenario headers, and the rows that sum each up
    awk -v rep="$repeat" '
        /^[a-z].*\(.*\)$/ && !/^peerchat binary/ { print; next }
        /^idle hub/ { print; next }
        rep > 1 && /median of/ { print; next }
        rep == 1 && /^  (peerchat|ncat|run [0-9])/ { print; next }
        /FAILED|skipped/ { print }
    ' "$1"
}
for kind in fanout idle; do
    round=1
    while [ "$round" -le "$rounds" ]; do
        for side in before after; do
            f="$out/$kind-$side-$round.txt"
            [ -f "$f" ] || continue
            { echo; echo "## $kind, $side, round $round"; pick "$f"; } >> "$summary"
        done
        round=$((round + 1))
    done
done
machine >> "$summary"
echo "== summary: $summary"
cat "$summary"
