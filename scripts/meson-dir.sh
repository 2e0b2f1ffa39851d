#!/usr/bin/env bash
# meson-dir.sh <build dir> <meson setup options...>: makes <build dir> ready for ninja.
# Sets it up when it is missing, and sets it up again when the migrations have
# changed since: meson.build lists migrations/*.sql when it configures (they are
# embedded in the binary), and meson cannot watch a directory, so after a
# `git pull` that brings a new migration a plain `ninja` would build a binary
# without it, which then fails at run time on a function it never created.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
shift
list=$(printf '%s\n' migrations/*.sql | sha256sum | cut -d' ' -f1)
stamp=$dir/.migrations-list
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" "$@" >/dev/null
elif [ "$(cat "$stamp" 2>/dev/null)" != "$list" ]; then
  echo "migrations changed since $dir was configured: meson setup --reconfigure $dir"
  meson setup --reconfigure "$dir" >/dev/null
fi
echo "$list" >"$stamp"
