#!/usr/bin/env bash
# The import benchmark (issue 10): one run, ratios.
#
#   1. generates a 1,000,000-row (~80 MB) contacts-like CSV (gen.py);
#   2. starts campaignd on a throwaway data dir, uploads the file to the
#      `imports` bucket, and syncs it into a dedicated table with 3 cleaning
#      rules on each of 5 columns (and typed date / integer columns);
#   3. loads the same file with `psql \copy` into a plain table of the same
#      columns and types (no key, no trigger, no cleaning);
#   4. reports import rows/s, the ratio to \copy, and campaignd's peak RSS
#      (VmHWM) during the import, and appends them to bench/RESULTS.md.
# Time of the import = completed_at - started_at of its sync_logs row (the
# server's own clock: reading, cleaning, COPY, dedupe, index, swap, commit).
# Also the CPU seconds (user + system, bench/cputime.py) of campaignd and of
# the PostgreSQL cluster (postmaster and every backend) during the import, and
# of psql and the cluster during \copy, per million rows: a figure a shared,
# loaded machine distorts far less than wall time.
#
# Needs build/campaignd (CAMPAIGND_BIN), psql, curl, python3.
# BENCH_IMPORT_ROWS (default 1000000; 12000000 makes a ~1.2 GB file, for the
# RSS goal), BENCH_IMPORT_CSV=FILE uses a file made earlier instead (its rows
# counted), BENCH_IMPORT_COPY=0 skips the \copy reference, BENCH_KEEP=1 keeps
# the work directory. BENCH_PERF=1 also records a perf profile of the import
# (perf record -a -g) and appends where campaignd's and this cluster's
# backends' CPU time went.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
bin=${CAMPAIGND_BIN:-$root/build/campaignd}
rows=${BENCH_IMPORT_ROWS:-1000000}
results=${BENCH_RESULTS:-$root/bench/RESULTS.md}
die() { echo "bench-import: $*" >&2; exit 1; }
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
[ -x "$bin" ] || die "$bin is missing: run make build"
for t in curl psql python3; do command -v "$t" >/dev/null || die "$t is missing"; done

work=$(mktemp -d /tmp/campaignd-bench-import.XXXXXX)
chmod 755 "$work"
data=$work/data
mkdir -p "$data" && chmod 755 "$data"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "${BENCH_KEEP:-}" = 1 ]; then echo "bench-import: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${BENCH_IMPORT_CSV:-}" ]; then
  # a file made earlier by gen.py (or several of its files' rows put together):
  # generating takes minutes on a loaded machine
  csv=$BENCH_IMPORT_CSV
  rows=$(($(wc -l <"$csv") - 1))
  log "using $csv ($rows rows)"
else
  csv=$work/contacts.csv
  log "generating $rows rows"
  python3 bench/import/gen.py "$csv" "$rows"
  chmod 644 "$csv"
fi
bytes=$(stat -c %s "$csv")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
unset DATABASE_URL JWT_SECRET CAMPAIGND_ENV_FILE
export CAMPAIGND_DATA_DIR=$data PORT=$port LOG_LEVEL=warn JWT_EXP=7200 DISABLE_SIGNUP=false \
  STORAGE_MAX_FILE_BYTES=$((bytes + 1048576)) MAX_BODY_BYTES=1073741824
log "starting $bin on $url"
"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
  curl -sf "$url/ready" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { tail -30 "$work/server.log"; die "the server exited"; }
  sleep 0.1
done
keys=$("$bin" keys)
anon=$(sed -n 's/^ANON_KEY=//p' <<<"$keys")
owner_url=$("$bin" db-url 2>/dev/null | tail -1)
psql_owner() { psql "$owner_url" -X -q -v ON_ERROR_STOP=1 "$@"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

signup=$(curl -sf -X POST "$url/auth/v1/signup" -H "apikey: $anon" -H 'Content-Type: application/json' \
  -d '{"email":"bench-import@example.com","password":"bench-password-123"}') || die "sign-up failed"
token=$(json 'd["access_token"]' <<<"$signup")
uid=$(json 'd["user"]["id"]' <<<"$signup")
auth=(-H "apikey: $anon" -H "Authorization: Bearer $token")

log "uploading $bytes bytes"
# -T streams the file (--data-binary @file reads it into memory first: too much for 1 GB)
curl -sf "${auth[@]}" -H 'Content-Type: text/csv' -X POST -T "$csv" \
  "$url/storage/v1/object/imports/$uid/contacts.csv" >/dev/null || die "upload failed"

column_config='{"columns":[
 {"source_name":"First Name","target_name":"first_name","type":"text","cleaning_rules":[{"type":"trim"},{"type":"collapse_whitespace"},{"type":"title_case"}]},
 {"source_name":"Last Name","target_name":"last_name","type":"text","cleaning_rules":[{"type":"trim"},{"type":"collapse_whitespace"},{"type":"title_case"}]},
 {"source_name":"Email","target_name":"email","type":"text","cleaning_rules":[{"type":"trim"},{"type":"lowercase"},{"type":"validate_email","on_invalid":"skip"}]},
 {"source_name":"Phone","target_name":"phone","type":"text","cleaning_rules":[{"type":"trim"},{"type":"replace","find":"-","replace":""},{"type":"max_length","length":20,"on_invalid":"skip"}]},
 {"source_name":"City","target_name":"city","type":"text","cleaning_rules":[{"type":"trim"},{"type":"collapse_whitespace"},{"type":"uppercase"}]},
 {"source_name":"Signup Date","target_name":"signup_date","type":"date"},
 {"source_name":"Score","target_name":"score","type":"integer"},
 {"source_name":"Status","target_name":"status","type":"text"}]}'
src=$(curl -sf "${auth[@]}" -H 'Content-Type: application/json' -H 'Prefer: return=representation' \
  -H 'Accept: application/vnd.pgrst.object+json' \
  -d "{\"name\":\"bench\",\"type\":\"csv_upload\",\"config\":{\"storage_path\":\"$uid/contacts.csv\"},\"column_config\":$column_config}" \
  "$url/rest/v1/data_sources") || die "cannot create the data source"
src_id=$(json 'd["id"]' <<<"$src")

pm_pid=$(head -1 "$(find "$data" -name postmaster.pid | head -1)")
cpu() { python3 bench/cputime.py "$server_pid" "tree:$pm_pid"; }
hwm0=$(hwm)
read -r cd_cpu0 pg_cpu0 <<<"$(cpu)"
log "importing (campaignd)"
perf_pid=""
if [ "${BENCH_PERF:-}" = 1 ]; then
  perf record -a -g -F 499 -o "$work/perf.data" >/dev/null 2>&1 &
  perf_pid=$!
fi
log_id=$(curl -sf "${auth[@]}" -X POST "$url/api/data-sources/$src_id/sync" | json 'd["sync_log_id"]') || die "sync refused"
# Waited for in ONE database session (a new psql every poll would be a new
# backend each time, counted in the cluster's CPU); meanwhile the cluster's
# processes are noted for the profile.
( while :; do pgrep -P "$pm_pid" >>"$work/pg_pids" || true; sleep 0.5; done ) &
pids_pid=$!
psql "$owner_url" -XAtq -c "do \$\$ begin
  loop
    exit when (select status from public.sync_logs where id = '$log_id') <> 'running';
    perform pg_sleep(0.2);
  end loop; end \$\$" || true
kill "$pids_pid" 2>/dev/null || true
status=$(psql "$owner_url" -XAtc "select status from public.sync_logs where id = '$log_id'")
if [ -n "$perf_pid" ]; then
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
fi
hwm1=$(hwm)
read -r cd_cpu1 pg_cpu1 <<<"$(cpu)"
[ "$status" = success ] || { psql "$owner_url" -XAtc "select error_message from public.sync_logs where id = '$log_id'"; tail -20 "$work/server.log"; die "the import ended $status"; }
read -r import_s imported skipped <<<"$(psql "$owner_url" -XAtc \
  "select extract(epoch from completed_at - started_at), records_imported, records_skipped from public.sync_logs where id = '$log_id'" | tr '|' ' ')"

log "loading the same file with psql \\copy"
copy_s=0 copy_psql_cpu=0 pg_cpu2=0 pg_cpu3=0
if [ "${BENCH_IMPORT_COPY:-1}" != 0 ]; then
  psql_owner -c 'create table public.bench_import_plain (first_name text, last_name text, email text, phone text, city text, signup_date date, score integer, status text)'
  read -r _ pg_cpu2 <<<"$(cpu)"
  t0=$(date +%s.%N)
  copy_psql_cpu=$(python3 bench/cputime.py --run psql "$owner_url" -X -q -v ON_ERROR_STOP=1 \
    -c "\\copy public.bench_import_plain from '$csv' with (format csv, header true)" 2>&1 >/dev/null |
    sed -n 's/^cpu_s=//p')
  t1=$(date +%s.%N)
  read -r _ pg_cpu3 <<<"$(cpu)"
  copy_s=$(python3 -c "print($t1 - $t0)")
fi

read -r import_rps copy_rps ratio cd_cpu_m pg_cpu_m copy_cpu_m cpu_ratio <<<"$(python3 -c "
r=$rows; i=$import_s; c=$copy_s; m=r/1e6
cd=$cd_cpu1-$cd_cpu0; pg=$pg_cpu1-$pg_cpu0; cp=${copy_psql_cpu:-0}+$pg_cpu3-$pg_cpu2
print(f'{r/i:.0f} {r/c if c else 0:.0f} {c/i:.2f} {cd/m:.2f} {pg/m:.2f} {cp/m:.2f} {cp/(cd+pg) if cd+pg else 0:.2f}')")"
log "import ${import_s}s ($import_rps rows/s), \\copy ${copy_s}s ($copy_rps rows/s), ratio $ratio, peak RSS $hwm1 KiB"
log "CPU s per million rows: campaignd $cd_cpu_m + PostgreSQL $pg_cpu_m; \\copy (psql + PostgreSQL) $copy_cpu_m"

rev="$(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
{
  echo
  echo "## Import: 1,000,000-row CSV into a dedicated table (issue 10)"
  echo
  echo "- Command: \`bench/import/run.sh\` (BENCH_IMPORT_ROWS=$rows), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory, other work running: $(cut -d' ' -f1-3 /proc/loadavg) load"
  echo "- campaignd $rev ($bin); file: $bytes bytes"
  echo
  echo "| measure | value |"
  echo "| --- | ---: |"
  echo "| campaignd import (storage → parse → 15 cleaning rules → COPY → index → swap), s | $import_s |"
  echo "| rows imported / skipped | $imported / $skipped |"
  echo "| campaignd import rows/s | $import_rps |"
  echo "| \`psql \\copy\` of the same file into a plain table, s | $copy_s |"
  echo "| \`psql \\copy\` rows/s | $copy_rps |"
  echo "| **ratio campaignd / \\copy** (goal ≥ 0.5) | **$ratio** |"
  echo "| campaignd peak RSS (VmHWM) before → after the import, KiB (goal < 65536) | $hwm0 → $hwm1 |"
  echo "| CPU s per million rows, import: campaignd (all threads) + PostgreSQL (all backends) | $cd_cpu_m + $pg_cpu_m |"
  echo "| CPU s per million rows, \\copy: psql + PostgreSQL | $copy_cpu_m |"
  echo "| ratio of CPU, \\copy / import (load-robust) | $cpu_ratio |"
  echo "| load average (1/5/15 min) at the end | $(cut -d' ' -f1-3 /proc/loadavg) |"
  if [ -n "$perf_pid" ] && [ -s "$work/perf.data" ]; then
    pg_list=$(sort -u "$work/pg_pids" | paste -sd, -)
    echo
    echo "Profile of the import (perf record -a -g -F 499; percentages of each process group's own samples):"
    echo
    echo "campaignd (pid $server_pid), by thread, library and symbol:"
    echo
    echo '```'
    perf report -i "$work/perf.data" --no-children -g none --percentage relative --pid "$server_pid" \
      --sort pid,dso,symbol --stdio 2>/dev/null |
      grep -E '^ +[0-9]' | head -40 | cut -c1-140 | sed 's/ *$//' || true
    echo '```'
    echo
    echo "this cluster's PostgreSQL processes, by symbol:"
    echo
    echo '```'
    perf report -i "$work/perf.data" --no-children -g none --percentage relative --pid "$pg_list" \
      --sort dso,symbol --stdio 2>/dev/null |
      grep -E '^ +[0-9]' | head -40 | cut -c1-140 | sed 's/ *$//' || true
    echo '```'
  fi
} >>"$results"
log "appended to $results"
