#!/usr/bin/env bash
# meson-dir.sh <build dir> <meson setup options...>: makes <build dir> ready for
# ninja: sets it up when it is missing (make build/run, make test's build-asan
# and build-fuzz). New or removed migrations need no new set-up: the build
# lists migrations/ itself and ninja watches the directory (meson.build,
# scripts/embed_migrations.py).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
shift
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" "$@" >/dev/null
fi
