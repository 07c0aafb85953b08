#!/usr/bin/env bash
# A new user's first run, measured: a fresh clone of HEAD in a temporary directory, with EMPTY Go build,
# Go module and pip caches (GOCACHE, GOMODCACHE, PIP_CACHE_DIR point into it), then the README's two
# commands, timed: `make demo` to its summary, `make test` after it, and a second `make demo` (what every
# later run costs). Prints a markdown table and writes it to build/bench-first-run.md.
#
# Debian's packages (prometheus, etcd) are NOT removed: they stay installed, so apt's download and
# install time is not in the figures. Takes 15-30 minutes of both cores.
#
#   ci/bench-first-run.sh [--warm-caches] [--demo-only] [--keep] [--allow-dirty] [--no-netns]
#     --warm-caches  use this machine's Go and pip caches: a quick check of this script, not a first run
#     --demo-only    stop after the two `make demo` runs
#     --keep         keep the temporary directory (its path is printed)
#     --allow-dirty  run although the work tree has uncommitted changes (they are NOT measured: HEAD is)
#     --no-netns     run the demo and the tests in this network namespace (default, as root: a private one
#                    each, because KServe's agent binds one abstract socket per namespace)
#
# Installs need the package registries, the demo and the tests must not share a network namespace with
# other agents: so each command runs in two steps, `make setup-demo` (or `make setup`) with network, then
# `make demo` (or `make test`) in a private network namespace, where its own setup check finds nothing to do.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
warm="" demo_only="" keep="" allow_dirty="" netns=1
for arg in "$@"; do
  case "$arg" in
    --warm-caches) warm=1 ;;
    --demo-only) demo_only=1 ;;
    --keep) keep=1 ;;
    --allow-dirty) allow_dirty=1 ;;
    --no-netns) netns="" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done

say() { printf '\033[1;35m[bench-first-run]\033[0m %s\n' "$*"; }
die() { echo "bench-first-run: $*" >&2; exit 1; }

commit="$(git -C "$REPO" rev-parse HEAD)"
if [[ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]]; then
  [[ -n "$allow_dirty" ]] || die "the work tree has uncommitted changes; commit them or pass --allow-dirty (HEAD is measured)"
  say "WARNING: uncommitted changes are not measured: this measures HEAD ${commit:0:12}"
fi
if [[ -n "$netns" ]] && ! { [[ $(id -u) -eq 0 ]] && command -v unshare ip >/dev/null; }; then
  die "a private network namespace needs root, unshare and ip; pass --no-netns to run without one"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/bench-first-run.XXXXXX")"
clone="$tmp/kserve-model-monitoring"
results="$tmp/results"
mkdir -p "$results"

# Processes still running from the clone (an interrupted demo): ours by construction, killed by id.
leftovers() {
  local p
  for p in /proc/[0-9]*; do
    [[ "$(readlink "$p/cwd" 2>/dev/null)" == "$tmp"* ]] && echo "${p#/proc/}"
  done
  return 0
}
cleanup() {
  local pids
  pids="$(leftovers)"
  if [[ -n "$pids" ]]; then
    say "stopping processes left in the clone: $(echo $pids)"
    kill -KILL $pids 2>/dev/null || true
  fi
  if [[ -n "$keep" ]]; then
    say "kept $tmp"
  else
    chmod -R u+w "$tmp" 2>/dev/null || true # the Go module cache is read-only
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

if [[ -z "$warm" ]]; then
  export GOCACHE="$tmp/cache/go-build" GOMODCACHE="$tmp/cache/go-mod" PIP_CACHE_DIR="$tmp/cache/pip"
  caches="empty Go build, Go module and pip caches in $tmp/cache"
else
  caches="WARM caches of this machine (--warm-caches: not a first run)"
fi
unset KMM_SETUP_CHECKED

# phase NAME MARKER NETNS CMD...: runs CMD in the clone, every line shown with the elapsed time; records
# the seconds to the first line matching MARKER (or to the end), the exit code and the log.
phase() {
  local name="$1" marker="$2" private="$3"
  shift 3
  local log="$results/$name.log" start=$EPOCHREALTIME mark="" line plain rc
  say "$name: $*${private:+ (private network namespace)}"
  local run=("$@")
  [[ -z "$private" || -z "$netns" ]] || run=(unshare --net bash -c 'ip link set lo up && exec "$@"' _ "$@")
  shopt -s extglob
  set +e
  (cd "$clone" && "${run[@]}") 2>&1 | while IFS= read -r line; do
    printf '%s\n' "$line" >>"$log"
    printf '[%5.0fs] %s\n' "$(elapsed "$start")" "$line"
    plain="${line//$'\e'\[*([0-9;])m/}"
    if [[ -n "$marker" && -z "$mark" && "$plain" =~ $marker ]]; then
      mark="$(elapsed "$start")"
      echo "$mark" >"$results/$name.mark"
    fi
  done
  rc=${PIPESTATUS[0]}
  set -e
  printf '%s\n' "$(elapsed "$start")" >"$results/$name.seconds"
  echo "$rc" >"$results/$name.rc"
  say "$name: exit $rc after $(cat "$results/$name.seconds") s"
  return 0
}
# elapsed START: seconds since START (an $EPOCHREALTIME), one decimal.
elapsed() {
  local ms=$(((${EPOCHREALTIME/./} - ${1/./}) / 1000))
  printf '%d.%d\n' $((ms / 1000)) $((ms % 1000 / 100))
}
seconds_of() { printf '%.0f' "$(cat "$results/$1.${2:-seconds}" 2>/dev/null || cat "$results/$1.seconds")"; }
rc_of() { cat "$results/$1.rc"; }

# built_in NAME: what the phase built, from the install lines ("built helm v3.22.0 in 95s").
built_in() {
  local list
  list="$(sed 's/\x1b\[[0-9;]*m//g' "$results/$1.log" 2>/dev/null |
    sed -nE 's/^(\[[a-z-]+\] )*built (.*) in ([0-9]+)s.*/\2 (\3 s)/p' | paste -sd ';' | sed 's/;/; /g')"
  echo "${list:-nothing built}"
}
passed_in() {
  sed 's/\x1b\[[0-9;]*m//g' "$results/$1.log" | grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' |
    sed -E 's/^=+ (.*) in [0-9.]+s.*/\1/' | paste -sd ';' | sed 's/;/; /g'
}

say "commit ${commit:0:12}, $caches; Debian's prometheus and etcd stay installed"
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
start_all=$EPOCHREALTIME
git clone -q --no-hardlinks "$REPO" "$clone"
git -C "$clone" checkout -q --detach "$commit"
# A committed .tools (say a worktree's symlink to shared tools) would make this a measure of nothing.
[[ ! -e "$clone/.tools" ]] || die "commit ${commit:0:12} tracks .tools: a fresh clone would not build its tools"

# A failed install leaves nothing to measure after it.
must_pass() {
  [[ "$(rc_of "$1")" == 0 ]] && return
  tail -n 40 "$results/$1.log" >&2
  die "$1 failed (exit $(rc_of "$1")); its last lines are above"
}

phase demo-setup "" "" make setup-demo
must_pass demo-setup
phase demo-run '^summary$' 1 make demo
if [[ -z "$demo_only" ]]; then
  phase test-setup "" "" make setup
  must_pass test-setup
  phase test-run 'make test: all tiers passed' 1 make test
fi
phase demo-setup-again "" "" make setup-demo
phase demo-again '^summary$' 1 make demo
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

demo_total=$(($(seconds_of demo-setup) + $(seconds_of demo-run mark)))
table="$(
  echo "First run of commit ${commit:0:12} on $(nproc) cores, $(date -u +'%Y-%m-%d %H:%M UTC'): $caches;"
  echo "Debian's prometheus and etcd already installed. Load average $load_start at the start, $load_end at the end."
  echo
  echo "| phase | seconds | exit | what was built or run |"
  echo "| --- | ---: | ---: | --- |"
  echo "| \`make demo\` 1/2: \`make setup-demo\` | $(seconds_of demo-setup) | $(rc_of demo-setup) | $(built_in demo-setup) |"
  echo "| \`make demo\` 2/2: demo model, demo to its summary | $(seconds_of demo-run mark) | $(rc_of demo-run) | $(built_in demo-run); demo model trained; summary at $(seconds_of demo-run mark) s, exit at $(seconds_of demo-run) s |"
  echo "| **\`make demo\` on a fresh clone, to its summary** | **$demo_total** | | |"
  if [[ -z "$demo_only" ]]; then
    echo "| \`make test\` 1/2: \`make setup\` (the rest) | $(seconds_of test-setup) | $(rc_of test-setup) | $(built_in test-setup) |"
    echo "| \`make test\` 2/2: every tier | $(seconds_of test-run) | $(rc_of test-run) | $(passed_in test-run) |"
    echo "| **\`make test\` after \`make demo\`** | **$(($(seconds_of test-setup) + $(seconds_of test-run)))** | | |"
  fi
  echo "| \`make setup-demo\` again | $(seconds_of demo-setup-again) | $(rc_of demo-setup-again) | $(built_in demo-setup-again) |"
  echo "| \`make demo\` again, to its summary | $(seconds_of demo-again mark) | $(rc_of demo-again) | $(built_in demo-again); exit at $(seconds_of demo-again) s |"
  echo
  echo "Total $(elapsed "$start_all") s."
)"
echo
echo "$table"
mkdir -p "$REPO/build"
echo "$table" >"$REPO/build/bench-first-run.md"
say "table written to build/bench-first-run.md"
failed=""
for f in "$results"/*.rc; do [[ "$(cat "$f")" == 0 ]] || failed+=" $(basename "$f" .rc)"; done
[[ -z "$failed" ]] || die "failed phases:$failed (logs: rerun with --keep)"
