#!/usr/bin/env bash
# Runs every test layer of campaignd and ends with one line "N passed, N failed".
#   lint and docs checks; C unit tests (cmocka) under ASan/UBSan; libFuzzer
#   targets for a short run; pgTAP over the migrated embedded database; and
#   integration tests with the real @supabase/supabase-js against the real
#   binary (ASan/UBSan build); end-to-end tests of the dashboard in chromium.
# Environment: FUZZ_SECONDS (default 15) per fuzz target; TEST_LAYERS to run a
# subset, e.g. TEST_LAYERS="unit sql".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
layers=${TEST_LAYERS:-"lint unit fuzz sql integration e2e"}
fuzz_seconds=${FUZZ_SECONDS:-15}
passed=0
failed=0
failures=()
work=$(mktemp -d /tmp/campaignd-test.XXXXXX)
chmod 755 "$work"
server_pid=""

cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  # PostgreSQL clusters a crashed test left behind (they run in their own
  # process group, so nothing else stops them).
  pkill -INT -f "postgres -D $work" 2>/dev/null && sleep 1
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

pass() { passed=$((passed + ${1:-1})); }
fail() { failed=$((failed + ${1:-1})); failures+=("$2"); }
section() { printf '\n== %s\n' "$1"; }
want() { case " $layers " in *" $1 "*) return 0 ;; esac; return 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-"abort_on_error=0:detect_leaks=1:halt_on_error=1"}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-"print_stacktrace=1:halt_on_error=1"}
export LSAN_OPTIONS=${LSAN_OPTIONS:-"suppressions=$root/tests/lsan.supp:print_suppressions=0"}

section "build (ASan + UBSan)"
scripts/meson-dir.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false \
  --buildtype=debugoptimized || exit 1
ninja -C build-asan >/dev/null || { ninja -C build-asan; echo "0 passed, 1 failed"; exit 1; }
bin=$root/build-asan/campaignd
echo "built $bin"
# The dashboard, bundled next to the binary under test (WEB_DIR of the tests).
web_dir=$root/build-asan/web
if want integration || want e2e; then
  node scripts/build-web.mjs "$web_dir" || { echo "0 passed, 1 failed"; exit 1; }
fi

if want lint; then
  section "lint"
  if scripts/lint.sh; then pass; else fail 1 "lint"; fi
  if diff -u docs/configuration.md <("$bin" config --markdown) >/dev/null; then
    pass; echo "docs/configuration.md matches the settings table"
  else
    fail 1 "docs/configuration.md is out of date (run: make docs)"
  fi
fi

if want unit; then
  section "unit tests (cmocka)"
  for t in build-asan/test_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    out=$("$t" 2>&1); rc=$?
    p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    p=${p:-0}; f=${f:-0}
    if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi
    echo "$(basename "$t"): $p passed, $f failed"
    [ "$f" != 0 ] && echo "$out" | grep -E 'FAILED|ERROR|Sanitizer|runtime error' | head -20
    pass "$p"; [ "$f" != 0 ] && fail "$f" "unit $(basename "$t")"
  done
fi

if want fuzz; then
  section "fuzz targets (libFuzzer, ${fuzz_seconds}s each)"
  # A fuzz build configured before the C++ shim (src/importer/phone.cpp) links
  # with g++, which has no libFuzzer: set it up again with clang++.
  if [ -f build-fuzz/build.ninja ] && ! grep -q 'clang++' build-fuzz/build.ninja; then
    rm -rf build-fuzz
  fi
  if CC=clang CXX=clang++ scripts/meson-dir.sh build-fuzz -Dfuzz=true -Db_sanitize=address,undefined \
       -Db_lundef=false --buildtype=debugoptimized && ninja -C build-fuzz >/dev/null; then
    for t in build-fuzz/fuzz_*; do
      [ -f "$t" ] && [ -x "$t" ] || continue
      name=$(basename "$t")
      corpus=tests/fuzz/corpus/${name#fuzz_}
      run_corpus="$work/corpus-$name"
      mkdir -p "$run_corpus"
      [ -d "$corpus" ] && cp -r "$corpus"/. "$run_corpus"/ 2>/dev/null
      dict=tests/fuzz/dict/${name#fuzz_}.dict
      if [ ! -f "$dict" ]; then
        echo "$name: no dictionary $dict"; fail 1 "fuzz $name (dictionary)"; continue
      fi
      if "$t" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -dict="$dict" \
           -artifact_prefix="$work/" "$run_corpus" >"$work/$name.log" 2>&1; then
        echo "$name: ok ($(grep -o 'Done [0-9]* runs' "$work/$name.log" | grep -o '[0-9]*' || echo '?') runs)"
        pass
      else
        echo "$name: FAILED"; tail -30 "$work/$name.log"
        fail 1 "fuzz $name"
      fi
    done
  else
    ninja -C build-fuzz; fail 1 "fuzz build"
  fi
fi

# One server on a throwaway data dir for the pgTAP layer.
start_server() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  CAMPAIGND_DATA_DIR="$work/var" PORT=$port LOG_LEVEL=warn "$bin" serve >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "the server did not become ready:"; tail -30 "$work/server.log"
  return 1
}

if want sql; then
  section "pgTAP (schema and RLS)"
  if start_server; then
    url=$(CAMPAIGND_DATA_DIR="$work/var" "$bin" db-url)
    if psql "$url" -v ON_ERROR_STOP=1 -q -f tests/sql/support/helpers.sql >"$work/helpers.log" 2>&1; then
      PGHOST="$work/var/run" PGPORT=5432 PGUSER=campaignd PGDATABASE=campaignd \
        pg_prove -v tests/sql/*.sql >"$work/pgtap.log" 2>&1
      p=$(grep -cE '^\s*ok [0-9]+' "$work/pgtap.log")
      f=$(grep -cE '^\s*not ok [0-9]+' "$work/pgtap.log")
      bad_files=$(grep -E '(Dubious|Failed|Bad plan|Parse errors|No subtests run)' "$work/pgtap.log" | head -20)
      echo "pgTAP: $p passed, $f failed"
      pass "$p"
      [ "$f" != 0 ] && { grep -E '^\s*not ok' "$work/pgtap.log" | head -40; fail "$f" "pgTAP"; }
      if [ -n "$bad_files" ] && [ "$f" = 0 ]; then echo "$bad_files"; fail 1 "pgTAP plan"; fi
    else
      cat "$work/helpers.log"; fail 1 "pgTAP helpers"
    fi
    kill -TERM "$server_pid"; wait "$server_pid"; rc=$?
    server_pid=""
    if [ $rc -ne 0 ]; then
      echo "the server exited with $rc at shutdown:"; grep -E 'Sanitizer|runtime error|ERROR' -A5 "$work/server.log" | head -40
      fail 1 "server shutdown (sanitizers)"
    else
      pass
    fi
  else
    fail 1 "server start for pgTAP"
  fi
fi

if want integration; then
  section "integration (node:test + @supabase/supabase-js)"
  if ls tests/integration/*.test.js >/dev/null 2>&1; then
    # A hung test must not hang CI: each test gets 3 minutes, the layer 40.
    CAMPAIGND_BIN=$bin CAMPAIGND_TEST_TMP=$work timeout 2400 node --test --test-concurrency=2 \
      --test-timeout=180000 --test-reporter=tap tests/integration/ >"$work/node.log" 2>&1
    p=$(sed -n 's/^# pass \([0-9]*\)/\1/p' "$work/node.log" | tail -1)
    f=$(sed -n 's/^# fail \([0-9]*\)/\1/p' "$work/node.log" | tail -1)
    p=${p:-0}; f=${f:-1}
    echo "integration: $p passed, $f failed"
    [ "$f" != 0 ] && grep -E -B2 -A25 '^\s*not ok' "$work/node.log" | head -150
    pass "$p"; [ "$f" != 0 ] && fail "$f" "integration"
  else
    echo "no integration tests"
  fi
fi

if want e2e; then
  section "e2e (chromium + playwright-core)"
  if [ -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ]; then
    # One file at a time (each drives a browser); screenshots of failures in build/e2e-failures/.
    # (30 min for the layer: wizard.test.js adds about 4 min under ASan on a busy machine.)
    rm -rf build/e2e-failures
    CAMPAIGND_BIN=$bin CAMPAIGND_TEST_TMP=$work CAMPAIGND_WEB_DIR=$web_dir timeout 1800 node --test \
      --test-concurrency=1 --test-timeout=300000 --test-reporter=tap tests/e2e/ >"$work/e2e.log" 2>&1
    p=$(sed -n 's/^# pass \([0-9]*\)/\1/p' "$work/e2e.log" | tail -1)
    f=$(sed -n 's/^# fail \([0-9]*\)/\1/p' "$work/e2e.log" | tail -1)
    p=${p:-0}; f=${f:-1}
    echo "e2e: $p passed, $f failed"
    [ "$f" != 0 ] && { grep -E -B2 -A30 '^\s*not ok' "$work/e2e.log" | head -150; echo "screenshots: build/e2e-failures/"; }
    pass "$p"; [ "$f" != 0 ] && fail "$f" "e2e"
  else
    echo "chromium is missing (scripts/setup.sh test installs it)"; fail 1 "e2e (no chromium)"
  fi
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
