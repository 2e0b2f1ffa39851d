#!/bin/bash
# The send engine's SQL alone, without campaignd (bench/RESULTS.md "send-db2"):
# one backend claims and steps a whole SMS campaign of N recipients the way
# src/sending/engine.c does (claims of 100, groups of 4, a commit per step,
# every send accepted) and prints that backend's CPU (user + system, from
# /proc/<pid>/stat) and wall time per message, the WAL written and the
# campaign's end state. The cluster must be local (psql's \! reads /proc).
#   bench/send/sqlpath/run.sh "$(CAMPAIGND_DATA_DIR=... build/campaignd db-url)" [N]
# Needs tests/sql/support/helpers.sql loaded once (tests.create_user).
set -euo pipefail
url=$1
n=${2:-2000}
here=$(cd "$(dirname "$0")" && pwd)
h=$(date -u +%H)
off=$(( ((13 - 10#$h + 36) % 24) - 12 ))  # a zone where it is ~13:00 now
if [ $off -eq 0 ]; then tz=UTC; elif [ $off -gt 0 ]; then tz="Etc/GMT-$off"; else tz="Etc/GMT+$(( -off ))"; fi
base=$(( 15000000000 + (RANDOM * 32768 + RANDOM) % 900000 * 1000 ))
out=$(psql "$url" -q -v n="$n" -v base="$base" -v tz="$tz" -f "$here/setup.sql" -f "$here/drive.sql" 2>&1)
echo "$out" | tail -4
echo "$out" | awk -v n="$n" '/^start/ {c0 = $2 + $3; w0 = $4} /^end/ {c1 = $2 + $3; w1 = $4}
  END {printf "cpu_us_per_msg %.0f wall_us_per_msg %.0f\n", (c1 - c0) * 1e4 / n, (w1 - w0) * 1e6 / n}'
