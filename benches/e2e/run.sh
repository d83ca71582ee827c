#!/usr/bin/env bash
# End-to-end benchmark: a 3-member etcd cluster and a 3-member kvnode
# cluster on loopback, driven by the same load generator (wrk + kv.lua) with
# the same workloads, run back to back. See README.md beside this file.
#
# Environment: DURATION (20s), WARMUP (3s), ROUNDS (1), KVNODE (a built
# binary; otherwise cargo builds one), CARGO (cargo), ETCD_BASE_PORT (23700),
# KVNODE_BASE_PORT (27000), BENCH_TMP (where the data dirs go; $TMPDIR or /tmp).
set -euo pipefail

DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-1}
THREADS=2                            # wrk threads; kv.lua spreads the preload over them
ETCD_BASE=${ETCD_BASE_PORT:-23700}   # client ports BASE+1..3, peer ports BASE+11..13
KV_BASE=${KVNODE_BASE_PORT:-27000}   # peer ports BASE+1..3, HTTP ports BASE+1001..1003
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LUA=$HERE/kv.lua

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

# --- 1. tools -----------------------------------------------------------------
missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || die "not root and no sudo: install ${missing[*]} first"
    sudo=(sudo)
  fi
  log "installing ${missing[*]}"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

# --- 2. kvnode binary ---------------------------------------------------------
if [[ -z ${KVNODE:-} ]]; then
  log "building kvnode (release)"
  # CARGO may carry a wrapper, e.g. CARGO="flock /tmp/cargo.lock cargo".
  (cd "$ROOT" && ${CARGO:-cargo} build --release -p kvnode)
  KVNODE=${CARGO_TARGET_DIR:-$ROOT/target}/release/kvnode
  KV_COMMIT=" (commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
fi
[[ -x $KVNODE ]] || die "kvnode binary $KVNODE is not executable"

# --- cleanup: every process we start and the temp dir, on any exit --------------
WORK=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/e2e-bench.XXXXXX")
ETCD_PIDS=() KV_PIDS=() WRK_PID=
declare -A NAME   # pid -> member, for messages
cleanup() {
  local pids=("${ETCD_PIDS[@]}" "${KV_PIDS[@]}" ${WRK_PID:-}) pid i
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for i in $(seq 30); do   # up to 3 s to stop cleanly (an etcd leader may hand over first), then SIGKILL
    local running=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
    ((running)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
# Ctrl-C or a kill: exit, which runs cleanup (the servers do not see the Ctrl-C).
trap 'exit 130' INT
trap 'exit 143' TERM
# fsync on tmpfs costs nothing, which would flatter both systems.
if [[ $(stat -f -c %T "$WORK") == tmpfs ]]; then
  log "WARNING: $WORK is on tmpfs, where fsync is free; set BENCH_TMP to a directory on disk"
fi

logs() { tail -n 5 "$WORK"/*.log 2>/dev/null || true; }
# Every server we started must still run (a crash would void the numbers).
alive() {
  local p
  for p in "${ETCD_PIDS[@]}" "${KV_PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null || die "${NAME[$p]} (pid $p) exited; last log lines:"$'\n'"$(logs)"
  done
}
# Polls the command "$@" every 0.2 s until it succeeds, for up to 30 s.
wait_for() {
  local what=$1; shift
  for _ in $(seq 150); do alive; "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$what did not come up within 30 s; last log lines:"$'\n'"$(logs)"
}

# --- 3. etcd: 3 members, default fsync ----------------------------------------
# Servers run in their own session (setsid execs in place: $! is the server),
# so a Ctrl-C reaches only this script, whose trap stops them.
etcd_client() { echo "127.0.0.1:$((ETCD_BASE + $1))"; }
initial=""
for i in 1 2 3; do initial+="e$i=http://127.0.0.1:$((ETCD_BASE + 10 + i)),"; done
for i in 1 2 3; do
  setsid etcd --name "e$i" --data-dir "$WORK/etcd-e$i" --logger zap --log-level warn \
    --listen-client-urls "http://$(etcd_client $i)" --advertise-client-urls "http://$(etcd_client $i)" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_BASE + 10 + i))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_BASE + 10 + i))" \
    --initial-cluster "${initial%,}" --initial-cluster-state new --initial-cluster-token e2e-bench \
    >"$WORK/etcd-e$i.log" 2>&1 &
  ETCD_PIDS+=($!) NAME[$!]="etcd member e$i"
done

# --- 3. kvnode: 3 `serve` members, as `kvnode cluster` starts them ------------
# (mutual TLS between peers; the client API is plain HTTP; always fsyncs)
"$KVNODE" certs --out "$WORK/certs" --ids 1,2,3 >/dev/null
od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$WORK/admin.token"
chmod 600 "$WORK/admin.token"
kv_http() { echo "127.0.0.1:$((KV_BASE + 1000 + $1))"; }
peers=""
for i in 1 2 3; do peers+="$i=127.0.0.1:$((KV_BASE + i))/$(kv_http $i),"; done
for i in 1 2 3; do
  setsid "$KVNODE" serve --id "$i" --peers "${peers%,}" --data-dir "$WORK/kvnode-$i" --cluster-id 1 \
    --peer-cert "$WORK/certs/node-$i.crt" --peer-key "$WORK/certs/node-$i.key" \
    --peer-ca "$WORK/certs/ca.crt" --admin-token-file "$WORK/admin.token" \
    >"$WORK/kvnode-$i.log" 2>&1 &
  KV_PIDS+=($!) NAME[$!]="kvnode member $i"
done

# --- 4. leaders -----------------------------------------------------------------
# etcd: the member whose status says it is the leader (ids are JSON strings).
etcd_leader() {
  local i s
  for i in 1 2 3; do
    s=$(curl -sf -m 2 -X POST "http://$(etcd_client $i)/v3/maintenance/status" -d '{}') || continue
    if [[ $(jq -r 'if .leader != null and .leader == .header.member_id then "yes" else "no" end' <<<"$s") == yes ]]; then
      etcd_client $i; return 0
    fi
  done
  return 1
}
kvnode_leader() {
  local i
  for i in 1 2 3; do
    [[ $(curl -sf -m 2 "http://$(kv_http $i)/status" | jq -r .role) == Leader ]] && { kv_http $i; return 0; }
  done
  return 1
}
wait_for "the etcd cluster (a leader)" etcd_leader
wait_for "the kvnode cluster (a leader)" kvnode_leader

# --- measuring (7) and driving wrk ------------------------------------------------
TICK=$(getconf CLK_TCK)
# utime+stime (fields 14, 15 of /proc/PID/stat) summed over the PIDs, in ticks;
# the fields are counted after the ")" ending the command name.
cpu_ticks() { local p t=0; for p; do t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done; echo $t; }
rss_range() { for p; do awk '/^VmRSS/ {print $2}' "/proc/$p/status"; done | sort -n |
  awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.0f–%.0f", lo / 1024, hi / 1024}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else printf "-"}'; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# run_wrk SYSTEM OP CONNS DURATION URL [MARKER]: sets RES to kv.lua's RESULT line.
# wrk runs in the background under `wait`, which a trapped signal interrupts:
# wrk handles SIGINT itself and exits 0, and bash would then ignore a Ctrl-C
# that arrived while it waited for wrk in the foreground.
preloaded() { local t; for ((t = 0; t < THREADS; t++)); do [[ -e $1$t ]] || return 1; done; }
run_wrk() {
  local out=$WORK/wrk.out
  wrk -t$THREADS -c"$3" -d"$4" --timeout 10s -s "$LUA" "http://$5" -- "$1" "$2" $THREADS ${6:-} >"$out" 2>&1 &
  WRK_PID=$!
  if [[ -n ${6:-} ]]; then   # preload: wrk would sleep out -d; SIGINT makes it report
    while ! preloaded "$6" && kill -0 $WRK_PID 2>/dev/null; do sleep 0.1; done
    kill -INT $WRK_PID 2>/dev/null || true
  fi
  wait $WRK_PID || die "wrk failed for $1 $2: $(cat "$out")"
  WRK_PID=
  RES=$(grep '^RESULT' "$out") || die "no RESULT from wrk for $1 $2: $(cat "$out")"
}

# --- 5. preload every key on both, so gets find values --------------------------
# kv.lua's preload puts each key once; each wrk thread marks its end with a file.
for sys in etcd kvnode; do
  leader=$(${sys}_leader) || die "$sys has no leader"
  run_wrk "$sys" preload 64 120s "$leader" "$WORK/preloaded-$sys-"
  preloaded "$WORK/preloaded-$sys-" && [[ $(field errors "$RES") == 0 ]] || die "$sys preload incomplete: $RES"
  log "$sys: preloaded 10000 keys at $leader in $(ms "$(field duration_us "$RES")") ms"
done

ROWS=() BAD=()
# bench SYSTEM OP CONNS PIDS...: one warmed-up run; sets R_* for the table.
bench() {
  local sys=$1 op=$2 conns=$3; shift 3
  alive
  local leader; leader=$(${sys}_leader) || die "$sys has no leader"
  run_wrk "$sys" "$op" "$conns" "$WARMUP" "$leader"
  local c0 c1 res; c0=$(cpu_ticks "$@")
  run_wrk "$sys" "$op" "$conns" "$DURATION" "$leader"
  res=$RES
  alive   # /proc/PID of a member that died would be gone or reused
  c1=$(cpu_ticks "$@")
  local n; n=$(field requests "$res")
  R_RPS=$(field rps "$res"); R_P50=$(field p50_us "$res"); R_P99=$(field p99_us "$res")
  R_CPU=$(awk -v d=$((c1 - c0)) -v t="$TICK" -v n="$n" 'BEGIN {printf "%.1f", n ? d * 1e6 / t / n : 0}')
  R_RSS=$(rss_range "$@")
  local errs=$(($(field errors "$res") + $(field misses "$res") + $(field socket_errors "$res")))
  R_ERR=$errs
  # More than 0.1 % failed requests: the numbers do not describe a working system.
  if ((errs * 1000 > n)); then BAD+=("$sys $op c=$conns: $res"); fi
  log "$sys $op c=$conns: $res cpu_us_per_req=$R_CPU rss_mb=$R_RSS"
}

# --- 6. interleaved runs: per workload, etcd then kvnode ------------------------
WORKLOADS=("put 64" "put 256" "get 64")
for ((round = 1; round <= ROUNDS; round++)); do
  for w in "${WORKLOADS[@]}"; do
    read -r op conns <<<"$w"
    bench etcd "$op" "$conns" "${ETCD_PIDS[@]}"
    e=("$R_RPS" "$R_P50" "$R_P99" "$R_CPU" "$R_RSS" "$R_ERR")
    bench kvnode "$op" "$conns" "${KV_PIDS[@]}"
    k=("$R_RPS" "$R_P50" "$R_P99" "$R_CPU" "$R_RSS" "$R_ERR")
    ROWS+=("| $op c=$conns | $round | $(printf %.0f "${e[0]}") | $(printf %.0f "${k[0]}") | $(ratio "${k[0]}" "${e[0]}") \
| $(ms "${e[1]}") | $(ms "${k[1]}") | $(ms "${e[2]}") | $(ms "${k[2]}") \
| ${e[3]} | ${k[3]} | $(ratio "${e[3]}" "${k[3]}") | ${e[4]} | ${k[4]} | ${e[5]} / ${k[5]} |")
  done
done

# --- 8. report ------------------------------------------------------------------
echo
echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
echo "etcd: $(etcd --version | head -1 | sed 's/etcd Version: //'); kvnode: $("$KVNODE" --version | sed 's/^kvnode //')${KV_COMMIT:-}; $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "wrk -t$THREADS, warmup $WARMUP, $DURATION per run, $ROUNDS round(s); 10,000 random keys, 128-byte values;" \
  "latency in ms; CPU = utime+stime of the 3 members per request; RSS MB min–max of the 3 members"
echo
echo "| workload | round | etcd req/s | kvnode req/s | kvnode/etcd | etcd p50 | kvnode p50 | etcd p99 | kvnode p99 | etcd CPU µs/req | kvnode CPU µs/req | etcd/kvnode CPU | etcd RSS MB | kvnode RSS MB | errors etcd / kvnode |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${ROWS[@]}"
if ((${#BAD[@]})); then
  echo
  echo "INVALID runs (more than 0.1 % of requests failed or missed):"
  printf '  %s\n' "${BAD[@]}"
  exit 1
fi
