#!/usr/bin/env bash
# campaignd's benchmark (`make bench`). Starts a server on a throwaway data dir,
# builds the "list campaigns" scenario (100,000 campaigns over 1,000 owners) and
# measures, at each connection count (BENCH_CONNECTIONS, default "8 64"), for
# BENCH_SECONDS (default 30) each:
#   1. wrk on GET /rest/v1/campaigns?select=*&order=created_at.desc&limit=20 as one
#      signed-in owner (the real 004_campaigns table and its RLS policies);
#   2. the same on bench_campaigns (same shape, the owner policy only, an index on
#      (user_id, created_at)): what the server adds when the query itself is cheap;
#   3. wrk on GET /auth/v1/user (token verification + one query);
#   4. wrk on password sign-in (POST /auth/v1/token?grant_type=password);
# and next to each, the reference measured in the same run on the same machine:
# pgbench replaying the SQL the server sent for that request (captured from the
# PostgreSQL log with log_statement=all, replayed with -M prepared in one pipeline)
# at the same client count, and for sign-in the raw bcrypt rate (bench/bcrypt_rate.c).
# Also records the server's RSS at the start and end of each run, and over a
# BENCH_SOAK_SECONDS (default 300) run of the cheap list at 8 connections. Then the
# realtime fan-out (bench/realtime/fanout.mjs) at 30,000 and 60,000 events/s offered
# (BENCH_FANOUT_RATES, rows/s, default "300 600"; "" skips it). Writes
# bench/RESULTS.md (BENCH_RESULTS to change) and prints the same.
# BENCH_ONLY picks a subset of the parts, by name: list (both list scenarios),
# auth_user, signin, soak, import (bench/import/run.sh: a 1,000,000-row CSV
# against psql \copy), connectors (bench/connectors/run.mjs: PostgreSQL →
# table against the psql pipe, and the incremental re-sync), fanout
# (bench/realtime/fanout.mjs at BENCH_FANOUT_RATES), send_email, send_sms
# (default: all of them), e.g.
#   BENCH_ONLY=list BENCH_SECONDS=20 bench/run.sh
#   BENCH_ONLY="import connectors" bench/run.sh
#   BENCH_ONLY=fanout BENCH_FANOUT_RATES="300 600" bench/run.sh
# The list part prints, at each connection count, both goals of issue 9 §1:
# server / pgbench for each list, and campaigns / bench_campaigns (goal >= 0.9);
# next to them the CPU per request of campaignd + PostgreSQL (and of campaignd
# alone), the figure a shared machine distorts least.
# BENCH_PERF=1 also records a system-wide perf profile (perf record -a -g)
# during the list_campaigns run at 8 connections and puts where the CPU time
# went (per process, and the server's hottest symbols) into the results.
# Needs: build/campaignd (CAMPAIGND_BIN), wrk (scripts/setup.sh bench), pgbench,
# psql, curl, python3, cc with libcrypt. BENCH_KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin=${CAMPAIGND_BIN:-$root/build/campaignd}
seconds=${BENCH_SECONDS:-30}
connections=${BENCH_CONNECTIONS:-"8 64"}
only=${BENCH_ONLY:-"list auth_user signin soak import connectors fanout send_email send_sms"}
wants() { case " $only " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
results=${BENCH_RESULTS:-$root/bench/RESULTS.md}
pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
cpus=$(nproc)
email="bench-owner@example.com"
password="bench-password-123"

die() { echo "bench: $*" >&2; exit 1; }
[ -x "$bin" ] || die "$bin is missing: run make build"
for t in wrk curl psql python3 cc; do
  command -v "$t" >/dev/null || die "$t is missing (wrk: scripts/setup.sh bench)"
done
pgbench=$pg_bin/pgbench
[ -x "$pgbench" ] || pgbench=$(command -v pgbench) || die "pgbench is missing"
case "$seconds" in '' | *[!0-9]*) die "BENCH_SECONDS must be a number of seconds" ;; esac

work=$(mktemp -d /tmp/campaignd-bench.XXXXXX)
chmod 755 "$work"
data=$work/data
mkdir -p "$data"
chmod 755 "$data"
server_pid=""

cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "${BENCH_KEEP:-}" = 1 ]; then echo "bench: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------------ server
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
unset DATABASE_URL JWT_SECRET CAMPAIGND_ENV_FILE
export CAMPAIGND_DATA_DIR=$data PORT=$port LOG_LEVEL=warn JWT_EXP=7200 \
  AUTH_RATE_LIMIT=10000000 LOGIN_MAX_FAILURES_PER_IP=1000000 LOGIN_MAX_FAILURES_PER_EMAIL=100000 \
  DISABLE_SIGNUP=false # the bench signs its user up (campaignd is invite-only by default)
log "starting $bin on $url (data dir $data)"
"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
  curl -sf "$url/ready" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { tail -30 "$work/server.log"; die "the server exited"; }
  sleep 0.1
done
curl -sf "$url/ready" >/dev/null || { tail -30 "$work/server.log"; die "the server is not ready"; }

keys=$("$bin" keys)
anon=$(sed -n 's/^ANON_KEY=//p' <<<"$keys")
owner_url=$("$bin" db-url 2>/dev/null | tail -1)
[ -n "$anon" ] && [ -n "$owner_url" ] || die "no keys or database URL"
# pgbench connects as the database owner, not as the authenticator role the server
# uses: pgbench -M prepared parses every statement of a pipeline before running
# the first one, i.e. before set_config('role', ...) has run, and authenticator
# itself may not see schema auth. After the role switch both run the same way.
psql_owner() { psql "$owner_url" -X -q -v ON_ERROR_STOP=1 "$@"; }
pg_version=$(psql "$owner_url" -XAtc 'show server_version')
server_rss() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }

# ------------------------------------------------------------------ data
log "signing up $email"
signup=$(curl -sf -X POST "$url/auth/v1/signup" -H "apikey: $anon" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"$password\"}") || die "sign-up failed"
token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$signup")
user_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["id"])' <<<"$signup")

log "loading 1,000 owners and 100,000 campaigns"
psql_owner -1 -v uid="$user_id" -f bench/scenario.sql
# VACUUM, not only ANALYZE: 100,000 fresh rows in each table are autovacuum's
# work a minute later, in whichever scenario runs then (its CPU is counted in
# that scenario's CPU per request, its I/O slows that scenario's requests), and
# the first reads of a fresh table set hint bits; both lists now start alike.
psql_owner -c 'vacuum (analyze) public.campaigns' -c 'vacuum (analyze) public.bench_campaigns' \
  -c 'vacuum (analyze) auth.users' -c "notify pgrst, 'reload schema'"

auth_headers=(-H "apikey: $anon" -H "Authorization: Bearer $token")
list_path="select=*&order=created_at.desc&limit=20"

# Waits until a GET answers 200 (the schema cache has the table); 0 if it does.
wait_ok() {
  local code=""
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "${auth_headers[@]}" "$1")
    [ "$code" = 200 ] && return 0
    sleep 0.2
  done
  log "$1 answers $code"
  return 1
}

# ------------------------------------------------------------------ capture
# capture NAME URL CURL-ARGS...: makes the request once with log_statement=all and
# writes $work/NAME.sql (pgbench script) and $work/NAME.vars (pgbench -D values).
# Made reliable (a run once said "could not capture the SQL"): the setting is
# known to be in force (a new session sees it) before the request; the log is
# read once the end marker has reached it, not after a fixed sleep; the
# request's own transaction is picked by its request.path among whatever else
# logged statements meanwhile (retention job, realtime); and a failed attempt
# is made again, up to 5 times.
capture() {
  local name=$1 target=$2
  shift 2
  local path=${target#"$url"}
  path=${path%%\?*}
  local attempt
  psql_owner -c "alter system set log_statement = 'all'" -c 'select pg_reload_conf()' >/dev/null
  for _ in $(seq 1 50); do
    [ "$(psql "$owner_url" -XAtc 'show log_statement')" = all ] && break
    sleep 0.1
  done
  sleep 0.5 # every backend handles the reload before its next command
  for attempt in 1 2 3 4 5; do
    psql_owner -c "select 'campaignd-bench-begin-$name-$attempt'" >/dev/null
    curl -s -o /dev/null "$@" "$target"
    psql_owner -c "select 'campaignd-bench-end-$name-$attempt'" >/dev/null
    for _ in $(seq 1 50); do
      grep -q "campaignd-bench-end-$name-$attempt" "$data/postgres.log" 2>/dev/null && break
      sleep 0.1
    done
    if python3 bench/extract_sql.py "$data/postgres.log" "campaignd-bench-begin-$name-$attempt" \
      "campaignd-bench-end-$name-$attempt" "$work/$name.sql" "$work/$name.vars" "$path" >&2; then
      psql_owner -c 'alter system reset log_statement' -c 'select pg_reload_conf()' >/dev/null
      return 0
    fi
    log "$name: capture attempt $attempt failed; again"
    sleep 1
  done
  psql_owner -c 'alter system reset log_statement' -c 'select pg_reload_conf()' >/dev/null
  return 1
}

# ------------------------------------------------------------------ runs
threads_for() { if [ "$1" -lt "$cpus" ]; then echo "$1"; else echo "$cpus"; fi; }
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2" | head -1; }
ratio() { python3 -c "import sys; a,b=float(sys.argv[1] or 0),float(sys.argv[2] or 0); print(f'{a/b:.2f}' if b > 0 else 'n/a')" "$1" "$2"; }

# tree_cpu: CPU clock ticks (user + system) used so far by campaignd and every
# process below it (its PostgreSQL postmaster and backends; cutime/cstime keep
# what exited ones used): the load-robust cost of the work, unlike req/s.
tree_cpu() {
  python3 - "$server_pid" <<'PY'
import os, sys
st = {}
for d in os.listdir('/proc'):
    if d.isdigit():
        try:
            t = open(f'/proc/{d}/stat').read()
        except OSError:
            continue
        f = t[t.rindex(') ') + 2:].split()
        st[int(d)] = (int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14]))
root = int(sys.argv[1])
def walk(pid, is_root):
    ppid, cpu, dead = st.get(pid, (0, 0, 0))
    return cpu + (0 if is_root else dead) + sum(walk(p, False) for p, v in st.items() if v[0] == pid)
print(walk(root, True))
PY
}
# server_cpu: CPU clock ticks (user + system) of the campaignd process alone
# (all its threads), to split a request's CPU between the server and PostgreSQL.
server_cpu() { python3 -c "import sys; t=open(f'/proc/{sys.argv[1]}/stat').read(); f=t[t.rindex(') ') + 2:].split(); print(int(f[11]) + int(f[12]))" "$server_pid"; }
# us_per N TICKS: CPU microseconds per unit of work.
us_per() { python3 -c "import sys; n,t=float(sys.argv[1] or 0),float(sys.argv[2] or 0); print(f'{t*1e6/100/n:.0f}' if n > 0 else 'n/a')" "$1" "$2"; }

# run_wrk NAME CONNS URL [wrk args...]: prints "rps p50 p90 p99 requests non2xx errors rss0 rss1
# cpu_us_per_request server_cpu_us_per_request" (the CPU of campaignd and its PostgreSQL
# processes, then of campaignd alone).
run_wrk() {
  local name=$1 c=$2 target=$3
  shift 3
  local rss0 rss1 out cpu0 cpu1
  local own0 own1
  rss0=$(server_rss)
  own0=$(server_cpu)
  cpu0=$(tree_cpu)
  wrk -t "$(threads_for "$c")" -c "$c" -d "${seconds}s" --timeout 10s "$@" "$target" >"$work/wrk-$name-$c.log" 2>&1 || true
  cpu1=$(tree_cpu)
  own1=$(server_cpu)
  rss1=$(server_rss)
  out=$(grep '^WRK ' "$work/wrk-$name-$c.log" || true)
  [ -n "$out" ] || { cat "$work/wrk-$name-$c.log" >&2; out="WRK rps=0"; }
  echo "$(field rps " $out") $(field p50_ms " $out") $(field p90_ms " $out") $(field p99_ms " $out") \
$(field requests " $out") $(field non2xx " $out") $(field socket_errors " $out") $rss0 $rss1 \
$(us_per "$(field requests " $out")" $((cpu1 - cpu0))) $(us_per "$(field requests " $out")" $((own1 - own0)))"
}

# run_pgbench NAME CONNS: prints "tps latency_ms db_cpu_us_per_txn" for the captured script.
run_pgbench() {
  local name=$1 c=$2 v
  local -a dargs=()
  while IFS= read -r v; do dargs+=(-D "$v"); done <"$work/$name.vars"
  local cpu0 cpu1
  cpu0=$(tree_cpu) # pgbench's backends are the embedded cluster's too
  "$pgbench" -n -M prepared -c "$c" -j "$(threads_for "$c")" -T "$seconds" "${dargs[@]}" \
    -f "$work/$name.sql" "$owner_url" >"$work/pgbench-$name-$c.log" 2>&1 || true
  cpu1=$(tree_cpu)
  local tps lat txns
  tps=$(sed -n 's/^tps = \([0-9]*\.[0-9]\).*/\1/p' "$work/pgbench-$name-$c.log" | head -1)
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$work/pgbench-$name-$c.log" | head -1)
  txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench-$name-$c.log" | head -1)
  [ -n "$tps" ] || { tail -5 "$work/pgbench-$name-$c.log" >&2; tps=0; }
  echo "$tps ${lat:-?} $(us_per "$txns" $((cpu1 - cpu0)))"
}

# perf_report NAME: appends where the CPU time went during the profiled run.
perf_sections=""
perf_report() {
  local name=$1 f=$work/perf-$1.data
  [ -s "$f" ] || { log "$name: no perf data"; return 0; }
  local by_comm by_sym by_dso pg_sym
  by_comm=$(perf report -i "$f" --no-children -g none --sort comm --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | head -12 || true)
  # this run's server and this run's PostgreSQL backends only (the machine is shared)
  local pm pg_pids
  pm=$(head -1 "$data/pg/postmaster.pid" 2>/dev/null || true)
  [ -n "$pm" ] || pm=$(head -1 "$(find "$data" -name postmaster.pid | head -1)" 2>/dev/null || true)
  pg_pids=$(pgrep -d, -P "$pm" 2>/dev/null || true)
  by_sym=$(perf report -i "$f" --no-children -g none --pid "$server_pid" --sort dso,symbol --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | head -30 | cut -c1-120 | sed 's/ *$//' || true)
  by_dso=$(perf report -i "$f" --no-children -g none --pid "$server_pid" --sort dso --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | head -12 | sed 's/ *$//' || true)
  pg_sym=""
  [ -z "$pg_pids" ] || pg_sym=$(perf report -i "$f" --no-children -g none --pid "$pg_pids" --sort symbol --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | head -20 | cut -c1-120 | sed 's/ *$//' || true)
  perf_sections+="
### Profile: $name at 8 connections (perf record -a -g, ${seconds}s)

CPU samples by process (all CPUs, the whole machine):

\`\`\`
$by_comm
\`\`\`

This run's server process (pid $server_pid, all threads), by library, then by symbol
(percentages of all samples on the machine):

\`\`\`
$by_dso
\`\`\`

\`\`\`
$by_sym
\`\`\`

This run's PostgreSQL backends, by symbol:

\`\`\`
$pg_sym
\`\`\`
"
}

declare -A rps_of=() cpu_of=() # "name c" -> server req/s, CPU µs/request (list ratios)
table_header="| connections | server req/s | p50 ms | p90 ms | p99 ms | non-2xx / socket errors | RSS start → end (KiB) | pgbench tps (same SQL) | pgbench avg latency ms | server / pgbench | CPU µs/request: server + PostgreSQL (server alone) | CPU µs/txn: pgbench's PostgreSQL |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
sections=""

# scenario TITLE NAME URL NOTE: wrk and pgbench at each connection count.
scenario() {
  local title=$1 name=$2 target=$3 note=$4 c w p
  local rows=""
  if ! wait_ok "$target"; then
    sections+="
## $title

Not measured: \`$target\` did not answer 200 (see the server log of the run).
"
    return 0
  fi
  if ! capture "$name" "$target" "${auth_headers[@]}"; then
    log "$name: could not capture the SQL; pgbench skipped"
    : >"$work/$name.sql"
  fi
  log "$name: warm-up"
  seconds=2 run_wrk "$name-warmup" 8 "$target" -s bench/report.lua "${auth_headers[@]}" >/dev/null
  for c in $connections; do
    log "$name: wrk, $c connections, ${seconds}s"
    local perf_pid=""
    if [ "${BENCH_PERF:-}" = 1 ] && [ "$name" = list_campaigns ] && [ "$c" = 8 ]; then
      perf record -a -g -F 299 -o "$work/perf-$name.data" -- sleep "$seconds" >/dev/null 2>&1 &
      perf_pid=$!
    fi
    read -r -a w <<<"$(run_wrk "$name" "$c" "$target" -s bench/report.lua "${auth_headers[@]}")"
    if [ -n "$perf_pid" ]; then
      wait "$perf_pid" || true
      perf_report "$name"
    fi
    if [ -s "$work/$name.sql" ]; then
      log "$name: pgbench, $c clients, ${seconds}s"
      read -r -a p <<<"$(run_pgbench "$name" "$c")"
    else
      p=(0 "?" "n/a")
    fi
    log "$name, $c connections: server / pgbench = $(ratio "${w[0]}" "${p[0]}")"
    rps_of["$name $c"]=${w[0]}
    cpu_of["$name $c"]=${w[9]}
    rows+="| $c | ${w[0]} | ${w[1]} | ${w[2]} | ${w[3]} | ${w[5]} / ${w[6]} | ${w[7]} → ${w[8]} | ${p[0]} | ${p[1]} | $(ratio "${w[0]}" "${p[0]}") | ${w[9]} (${w[10]}) | ${p[2]} |
"
  done
  local sql_text=""
  [ -s "$work/$name.sql" ] && sql_text=$(grep -v '^--' "$work/$name.sql")
  sections+="
## $title

\`GET $target\` as one signed-in user. $note

$table_header
$rows
<details><summary>SQL replayed by pgbench (captured from the server, parameters as pgbench variables)</summary>

\`\`\`sql
$sql_text
\`\`\`
</details>
"
}

if wants list; then
  scenario "List campaigns (004_campaigns and its RLS policies)" list_campaigns \
    "$url/rest/v1/campaigns?$list_path" \
    "The table of migration 004 with its policies, each written TO the member role it is for (017_app_roles: the request runs as app_user)."
  scenario "List campaigns, owner policy only (bench_campaigns)" list_bench_campaigns \
    "$url/rest/v1/bench_campaigns?$list_path" \
    "Same columns and rows (LIKE campaigns, bench/scenario.sql); one policy \`user_id = (select auth.uid())\` and an index on (user_id, created_at desc): the query is cheap, so this shows what the server adds."
  # issue 9 §1 goal (a): the real table's list >= 0.9 x the owner-policy-only list, same run
  list_rows=""
  for c in $connections; do
    a=${rps_of["list_campaigns $c"]:-0} b=${rps_of["list_bench_campaigns $c"]:-0}
    list_rows+="| $c | $a | $b | **$(ratio "$a" "$b")** | ${cpu_of["list_campaigns $c"]:-n/a} | ${cpu_of["list_bench_campaigns $c"]:-n/a} |
"
    log "list, $c connections: campaigns / bench_campaigns = $(ratio "$a" "$b") (goal >= 0.9)"
  done
  sections+="
## List campaigns against bench_campaigns (issue 9 §1, goal >= 0.9 at each connection count)

| connections | campaigns req/s | bench_campaigns req/s | campaigns / bench_campaigns | CPU µs/request campaigns | CPU µs/request bench_campaigns |
| ---: | ---: | ---: | ---: | ---: | ---: |
$list_rows"
fi
if wants auth_user; then
  scenario "GET /auth/v1/user (token verification + one query)" auth_user \
    "$url/auth/v1/user" ""
fi

if wants signin; then
# Password sign-in against the machine's bcrypt rate at the same cost.
log "bcrypt rate"
cost=$(psql "$owner_url" -XAtc "select substr(encrypted_password, 5, 2)::int from auth.users where email = '$email'")
cc -std=c11 -O2 -Isrc bench/bcrypt_rate.c -o "$work/bcrypt_rate" -lcrypt -lpthread
# Measured before and after the sign-in runs; the better of the two is the ceiling
# (other work on a shared machine only ever lowers it).
bcrypt_1=0
bcrypt_n=0
measure_bcrypt() {
  local out one all
  out=$("$work/bcrypt_rate" "$cost" 5 "$cpus")
  one=$(field rate " $(grep 'threads=1 ' <<<"$out")")
  all=$(field rate " $(tail -1 <<<"$out")")
  bcrypt_1=$(python3 -c 'import sys; print(max(map(float, sys.argv[1:])))' "$bcrypt_1" "$one")
  bcrypt_n=$(python3 -c 'import sys; print(max(map(float, sys.argv[1:])))' "$bcrypt_n" "$all")
}
measure_bcrypt
signin_results=()
export BENCH_DIR=$root/bench BENCH_EMAIL=$email BENCH_PASSWORD=$password
for c in $connections; do
  log "sign-in: wrk, $c connections, ${seconds}s"
  signin_results+=("$c $(run_wrk signin "$c" "$url/auth/v1/token?grant_type=password" -s bench/signin.lua -H "apikey: $anon")")
done
log "bcrypt rate, again"
measure_bcrypt
signin_rows=""
for r in "${signin_results[@]}"; do
  read -r -a w <<<"$r"
  signin_rows+="| ${w[0]} | ${w[1]} | ${w[2]} | ${w[3]} | ${w[4]} | ${w[6]} / ${w[7]} | ${w[8]} → ${w[9]} | $bcrypt_n | $(ratio "${w[1]}" "$bcrypt_n") |
"
done
sections+="
## Password sign-in: POST /auth/v1/token?grant_type=password

One user, the right password, as supabase-js \`signInWithPassword\` sends it (bench/signin.lua).
Reference: bcrypt hashes per second of this machine at the same cost ($cost), $cpus threads
(bench/bcrypt_rate.c; one thread: $bcrypt_1/s). Each sign-in verifies one hash and writes a session.

| connections | server req/s | p50 ms | p90 ms | p99 ms | non-2xx / socket errors | RSS start → end (KiB) | bcrypt/s ($cpus threads) | server / bcrypt |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$signin_rows"
fi

# ------------------------------------------------------------------ soak
# Server memory over a long run (BENCH_SOAK_SECONDS, default 300; 0 skips it):
# wrk on the cheap list at 8 connections, the server's RSS sampled every 30 s.
soak=${BENCH_SOAK_SECONDS:-300}
if wants soak && [ "$soak" -gt 0 ]; then
  log "soak: wrk, 8 connections, ${soak}s, RSS every 30 s"
  soak_target="$url/rest/v1/bench_campaigns?$list_path"
  wrk -t "$(threads_for 8)" -c 8 -d "${soak}s" --timeout 10s -s bench/report.lua \
    "${auth_headers[@]}" "$soak_target" >"$work/wrk-soak.log" 2>&1 &
  soak_pid=$!
  soak_rows="| 0 | $(server_rss) |
"
  for ((t = 30; t <= soak; t += 30)); do
    sleep 30
    soak_rows+="| $t | $(server_rss) |
"
  done
  wait "$soak_pid" || true
  soak_out=$(grep '^WRK ' "$work/wrk-soak.log" || true)
  sections+="
## Server memory over a ${soak}-second run

\`GET $soak_target\` at 8 connections for ${soak} s: $(field requests " $soak_out") requests,
$(field rps " $soak_out") req/s, p99 $(field p99_ms " $soak_out") ms, non-2xx $(field non2xx " $soak_out").
The campaignd process's resident memory, sampled every 30 s:

| seconds | RSS (KiB) |
| ---: | ---: |
$soak_rows"
fi

# ------------------------------------------------------------------ import, connectors
# Their own scripts, each with its own server; their sections go into this
# report (each also says its command, machine, load and CPU per million rows).
if wants import; then
  log "import: bench/import/run.sh"
  if CAMPAIGND_BIN=$bin BENCH_RESULTS=$work/import.md nice bench/import/run.sh >&2; then
    sections+="
$(cat "$work/import.md")
"
  else
    sections+="
## Import: 1,000,000-row CSV into a dedicated table (issue 10)

Not measured: bench/import/run.sh failed (see its output).
"
  fi
fi
if wants connectors; then
  log "connectors: bench/connectors/run.mjs"
  if CAMPAIGND_BIN=$bin BENCH_RESULTS=$work/connectors.md nice node bench/connectors/run.mjs >/dev/null; then
    sections+="
$(cat "$work/connectors.md")
"
  else
    sections+="
## Database connector: PostgreSQL → dedicated table (issue 11)

Not measured: bench/connectors/run.mjs failed (see its output).
"
  fi
fi

# ------------------------------------------------------------------ realtime fan-out
# bench/realtime/fanout.mjs starts its own server (its settings: no per-address
# connection limit, room for 1,000 sockets): 1,000 supabase-js clients over 10
# users, postgres_changes with RLS. Two points: 300 rows/s (30,000 events/s
# offered, the latency goal) and 600 rows/s (60,000 offered, the overload point:
# delivery must saturate, not collapse). BENCH_FANOUT_RATES="" skips it.
fanout_rates=${BENCH_FANOUT_RATES-"300 600"}
# phoenix: minimal Phoenix-protocol clients that only count (cheap enough that the
# machine can offer the rate); supabase-js: the real library (what a dashboard runs)
fanout_mode=${BENCH_FANOUT_CLIENT_MODE:-phoenix}
fanout_json=""
# The goal's two figures from the runs at 300 and 600 rows/s (when run).
fanout_goal() {
  python3 -c '
import json, sys
runs = {}
for line in sys.argv[1].splitlines():
    rate, _, js = line.partition(" ")
    try:
        runs[int(rate)] = json.loads(js)
    except ValueError:
        pass
out = []
if 300 in runs:
    r = runs[300]
    ins, p99, lost = r["inserted_per_s"], r["p99_ms"], r["lost"] + r.get("closed_undelivered", 0)
    ok = lost == 0 and p99 is not None and p99 < 250 and ins >= 0.95 * 300
    verdict = "met" if ok else "NOT met"
    out.append(f"- at 30,000 events/s offered (300 rows/s asked, {ins} inserted/s): p99 {p99} ms (goal < 250), "
               f"not delivered {lost:,} (goal 0, closed clients included): {verdict}")
if 600 in runs:
    r = runs[600]
    ins, eps, lost = r["inserted_per_s"], r["events_per_s"], r["lost"] + r.get("closed_undelivered", 0)
    ok = lost == 0 and eps >= 30000 and ins >= 0.95 * 600
    verdict = "met" if ok else "NOT met"
    out.append(f"- at 60,000 events/s offered (600 rows/s asked, {ins} inserted/s): {eps:,} delivered/s = "
               f"{eps / 30000:.2f} x the goal of 30,000, not delivered {lost:,} (goal 0, closed clients included): {verdict}")
print("\n".join(out) if out else "- the goal needs the 300 and 600 rows/s points (BENCH_FANOUT_RATES=\"300 600\")")
' "$fanout_json"
}
wants fanout || fanout_rates=""
if [ -n "$fanout_rates" ]; then
  command -v node >/dev/null || die "node is missing (scripts/setup.sh bench)"
  fanout_rows=""
  for rate in $fanout_rates; do
    log "realtime fan-out: 1,000 clients, 10 users, $rate rows/s for ${BENCH_FANOUT_SECONDS:-15} s"
    out=$(CAMPAIGND_BIN=$bin CAMPAIGND_TEST_TMP=$work CLIENTS=1000 USERS=10 RATE=$rate \
      CLIENT_MODE=$fanout_mode SECONDS=${BENCH_FANOUT_SECONDS:-15} node bench/realtime/fanout.mjs \
      2>"$work/fanout-$rate.log" | tail -1) || out=""
    fanout_json+="$rate $out
"
    fanout_rows+=$(python3 -c '
import json, sys, types
try:
    r = json.loads(sys.argv[1], object_hook=lambda d: types.SimpleNamespace(**d))
except ValueError:
    print(f"| {sys.argv[2]} | failed (see the work directory) | | | | | | | | | | | | | | |")
    sys.exit()
print(f"| {r.rate} | {r.inserted_per_s} | {r.offered_per_s:,} | {r.delivered:,} of {r.expected:,} | {r.lost:,} "
      f"| {r.closed_clients} ({r.closed_undelivered:,}) | {r.insert_failed:,} "
      f"| {r.events_per_s:,} | {r.drain_s} | {r.p50_ms} | {r.p99_ms} | {r.server_us_per_event} "
      f"| {r.total_us_per_event} | {r.server_us_per_row} | {r.db_us_per_row} | {r.load_avg:.1f} |")
' "$out" "$rate")
    fanout_rows+="
"
  done
  sections+="
## Realtime fan-out (this run)

\`bench/realtime/fanout.mjs\`: 1,000 $fanout_mode clients (BENCH_FANOUT_CLIENT_MODE; in CLIENT_PROCS Node processes, default one per CPU, on this machine)
subscribed to \`INSERT\` on \`public.campaigns\` over 10 users (RLS: 10 claims groups, each
event goes to the 100 sockets of its owner). Goal: at 30,000 events/s offered nothing lost
and p99 < 250 ms; at 60,000 offered >= 30,000 delivered/s, nothing lost. Server CPU
µs/event: campaignd's user + system CPU time over the run (the inserts included) per
delivered event, and with its PostgreSQL processes; a busy machine distorts them less than events/s.
\"lost\": events that clients still connected had not received 90 s after the last insert
(delivered events/s counts the first 30 s); what clients whose socket was closed missed is
counted apart (the server's 1008 \"client too slow\" past 8 MiB queued or its 60 s idle
close, or supabase-js dropping its socket on a late heartbeat reply), and rows whose insert
failed are not expected.

| rows/s asked | rows/s inserted | events/s offered | delivered | lost | closed clients (their undelivered events) | failed inserts | delivered events/s | drain s | p50 ms | p99 ms | campaignd CPU µs/event | + PostgreSQL CPU µs/event | campaignd CPU µs/row | PostgreSQL CPU µs/row | load avg |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$fanout_rows
$(fanout_goal)"
fi

# ------------------------------------------------------------------ sending
# Issue 12's two sending goals (bench/send/): a 10,000-recipient e-mail
# campaign to the local SMTP sink against a minimal Python client over the
# same connections, and a 10,000-recipient SMS campaign to the local
# Twilio-shaped server against a minimal keep-alive HTTP client; each starts
# its own server and prints one JSON line. BENCH_SEND_RECIPIENTS (default
# 10000) changes the size.
send_rows=""
send_row() { # NAME JSON
  python3 -c '
import json, sys
try:
    r = json.loads(sys.argv[2])
except ValueError:
    print(f"| {sys.argv[1]} | failed (see the work directory) |" + " |" * 12)
    sys.exit()
rate = r.get("campaignd_msg_per_s", r.get("campaignd_sms_per_s"))
ceiling = r.get("minimal_client_msg_per_s", r.get("minimal_client_sms_per_s"))
ba = r.get("minimal_client_before_after")
if ba:  # the higher of the two readings, then each and their spread
    ceiling = "%s (%s / %s, %s %%)" % (ceiling, ba[0], ba[1], r["minimal_client_spread_pct"])
cpu, rss = r["cpu_us_per_msg"], r["rss_kib"]
n, conns, ratio, dups, load = r["n"], r["connections"], r["ratio"], r["duplicates"], r["load_average"]
c_us, pg_us = cpu["campaignd"], cpu["postgres"]
r0, r1, r2 = rss["start"], rss["peak"], rss["end"]
w = r.get("work_per_msg") or {}
work = ("%.0f / %s / %s+%s+%s" % (w["wal"], w["xact"], w["ins"], w["upd"], w["del"])) if w else ""
k = r.get("worker_clock") or {}
clock = ("%s %% / %s %%" % (k["provider_busy_pct"], k["db_wait_pct"])) if k else ""
sv = r.get("sink_cpu_us_per_msg") or r.get("fake_cpu_us_per_msg") or {}
srv = ("%s / %s" % (sv.get("campaignd", sv.get("campaignd_send")),
                    ", ".join(str(x) for x in sv.get("minimal_client") or []))) if sv else ""
mc = ", ".join(str(x) for x in r.get("minimal_client_cpu_us_per_msg") or [])
print(f"| {sys.argv[1]} | {n:,} | {conns} | {rate} | {ceiling} | **{ratio}** | {c_us} + {pg_us} | {mc} "
      f"| {srv} | {work} | {clock} | {r0} / {r1} / {r2} | {dups} | {load} |")
' "$1" "$2"
}
send_n=${BENCH_SEND_RECIPIENTS:-10000}
if wants send_email; then
  log "sending: $send_n-recipient e-mail campaign to the SMTP sink"
  out=$(CAMPAIGND_BIN=$bin CAMPAIGND_TEST_TMP=$work BENCH_SEND_RECIPIENTS=$send_n \
    node bench/send/run.mjs 2>"$work/send-email.log" | tail -1) || out=""
  send_rows+="$(send_row e-mail "$out")
"
fi
if wants send_sms; then
  log "sending: $send_n-recipient SMS campaign to the Twilio-shaped server"
  out=$(CAMPAIGND_BIN=$bin CAMPAIGND_TEST_TMP=$work N=$send_n \
    node bench/send/sms.mjs 2>"$work/send-sms.log" | tail -1) || out=""
  send_rows+="$(send_row SMS "$out")
"
fi
if [ -n "$send_rows" ]; then
  sections+="
## Sending (issue 12)

\`bench/send/run.mjs\` (e-mail to tests/integration/smtp-sink.py; ceiling: bench/send/minimal_client.py,
a minimal Python SMTP client pipelining as campaignd does when the sink offers RFC 2920, replaying campaignd's very messages over the same connections) and \`bench/send/sms.mjs\`
(SMS to tests/integration/fake-twilio.js; ceiling: bench/send/sms_client.mjs, a node:http keep-alive
client in its own process sending campaignd's very requests). The minimal client runs on the same
sink before and after campaignd's send: the ratio is against the higher of the two (a reading that
stalled is not the ceiling; until session 13, the mean), each and their spread in brackets. campaignd's time runs from \`POST /api/campaigns/:id/send\` (recipients
materialised by the engine) to the last message. Goal: ratio >= 0.8, RSS flat. CPU µs/message: user + system time of campaignd +
of its PostgreSQL cluster (backends, postmaster) over the send, per message (bench/send/cpu.mjs).
Workers' time: the share of the send workers' wall clock in the provider's conversations (the
connection busy) / waiting for the database, from the line each worker logs at info level.
The minimal client's CPU µs/msg: its own user + system time per message in each run, what
campaignd + PostgreSQL's CPU per message compares with. The server's CPU µs/msg: the SMTP
sink's or the fake Twilio's own CPU per message during campaignd's send / during each
minimal-client run; the same server needs the same CPU per message whoever sends, so a
phase far above the others ran in a minute when the machine itself was slow, and its rate
says little.

| channel | recipients | connections | campaignd msg/s | minimal client msg/s: higher (before / after, spread) | ratio | CPU µs/msg (campaignd + PostgreSQL) | the minimal client's CPU µs/msg | the server's CPU µs/msg (campaignd's send / minimal client) | per msg: WAL bytes / commits / rows ins+upd+del | workers' time: provider busy / database wait | RSS start / peak / end (KiB) | duplicates | load average |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$send_rows"
fi

# ------------------------------------------------------------------ report
model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain -- src migrations 2>/dev/null)" ] && rev="$rev (with uncommitted changes)"
{
  cat <<EOF
# campaignd benchmark results

- Command: \`make bench\` (bench/run.sh), BENCH_SECONDS=$seconds, BENCH_CONNECTIONS="$connections"
- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ)
- Machine: $cpus CPUs ($model), $mem memory, Linux $(uname -r)
- campaignd $rev ($bin), HTTP_THREADS=8 (one database connection each); PostgreSQL $pg_version (embedded)
- wrk $(wrk --version 2>&1 | head -1 | awk '{print $2}'), threads = min(connections, CPUs); pgbench -M prepared, one pipeline per transaction

Every ratio compares two numbers measured in this run on this machine: the server's
requests per second against pgbench replaying the same SQL at the same client count
(the database's own ceiling), or sign-ins per second against raw bcrypt hashes per
second. wrk, the server, PostgreSQL and pgbench share the same CPUs, so numbers from
another machine or another run are not comparable; ratios are. RSS is the campaignd
process only (PostgreSQL runs in its own processes).
EOF
  printf '%s\n' "$sections"
  [ -z "$perf_sections" ] || printf '\n## Where the time goes\n%s\n' "$perf_sections"
  # The realtime fan-out has its own driver (bench/realtime/fanout.mjs) and its
  # own results file; they are reproduced here so all results are in one place.
  if [ -f bench/realtime/RESULTS.md ]; then
    echo
    cat bench/realtime/RESULTS.md
  fi
  # The dashboard's bundle size and first paint are measured by the e2e tests
  # (tests/e2e/dashboard.test.js), which write build/e2e/RESULTS.md on every
  # `make test`; the latest of them is published here.
  if [ -f build/e2e/RESULTS.md ] && [ build/e2e/RESULTS.md -nt bench/web/RESULTS.md ]; then
    cp build/e2e/RESULTS.md bench/web/RESULTS.md
  fi
  if [ -f bench/web/RESULTS.md ]; then
    echo
    cat bench/web/RESULTS.md
  fi
} >"$results"
cat "$results"
log "wrote $results"
