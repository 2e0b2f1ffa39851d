#!/usr/bin/env bash
# Installs what campaignd needs to build, run and test on Debian 12, and nothing
# that is already there. Called by `make build`, `make run` and `make test`.
#   scripts/setup.sh build   - compiler, libraries, PostgreSQL server, Node.js and the
#                              node modules (esbuild bundles the dashboard, web/)
#   scripts/setup.sh test    - the above plus pgTAP, cmocka, clang (libFuzzer), chromium (e2e)
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-build}

pkgs_build=(build-essential pkg-config meson ninja-build
  libmicrohttpd-dev libjansson-dev libjwt-dev libssl-dev libpq-dev libcrypt-dev
  libcurl4-openssl-dev libwslay-dev libcsv-dev
  libzip-dev libexpat1-dev libfreexl-dev libphonenumber-dev libicu-dev
  libqrencode-dev
  libmariadb-dev freetds-dev
  libcairo2-dev libpango1.0-dev fonts-dejavu-core
  postgresql-15 postgresql-client-15)
pkgs_test=(libcmocka-dev postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl clang libclang-rt-14-dev
  chromium python3-aiosmtpd mariadb-server poppler-utils)

want=("${pkgs_build[@]}")
[ "$what" = test ] && want+=("${pkgs_test[@]}")
[ "$what" = bench ] && want+=(wrk)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: these Debian packages are missing: ${missing[*]}" >&2
    echo "setup: install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

if [ "$what" = test ] || [ "$what" = build ] || [ "$what" = bench ]; then
  # (bench: the realtime fan-out's clients are supabase-js too)
  # Node.js 20 with its npm: Debian's own nodejs/npm pair, unless a nodejs with a
  # bundled npm (as on our CI image) is already there.
  if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    else
      echo "setup: node and npm are missing: sudo apt-get install nodejs npm" >&2; exit 1
    fi
  fi
  # The dashboard's build (esbuild, Preact, uPlot, supabase-js) and the tests
  # (supabase-js, playwright-core) use node modules pinned by the lock file.
  if [ ! -d node_modules/@supabase/supabase-js ] || [ ! -d node_modules/esbuild ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "setup: npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  fi
fi
