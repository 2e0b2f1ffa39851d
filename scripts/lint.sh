#!/usr/bin/env bash
# The lint step of C-STYLE.md: banned functions (curl's checksrc idea) and
# formatting. Exits non-zero and names every offending line.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
files=$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 2>/dev/null; git ls-files --others --exclude-standard 'src/*.c' 'src/*.h' 'tests/*.c' 2>/dev/null)
# \b<name>\s*\( outside comments and strings is close enough for our tree;
# a deliberate use needs rewriting, not an exception.
banned='\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|gets|strtok)\s*\('
for f in $files; do
  hits=$(sed -e 's://.*$::' "$f" | grep -nE "$banned" | grep -vE '^\s*[0-9]+:\s*(\*|/\*)')
  if [ -n "$hits" ]; then
    echo "lint: banned function in $f (use snprintf, bounded copies, strtol with checks):"
    echo "$hits" | sed 's/^/  /'
    status=1
  fi
done
if command -v clang-format >/dev/null; then
  for f in $files; do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
      echo "lint: $f is not formatted (run: make format)"
      status=1
    fi
  done
fi
# Layering (docs/architecture.md): no include of a higher layer, no include cycle, and,
# when a build tree is there, no call from an object file into a higher layer.
layers_args=()
for d in build-asan/libcampaignd_core.a.p build/libcampaignd_core.a.p; do
  if [ -d "$d" ]; then layers_args=(--objects "$d"); break; fi
done
python3 scripts/check-layers.py "${layers_args[@]}" >/dev/null ||
  { python3 scripts/check-layers.py "${layers_args[@]}"; status=1; }
[ $status = 0 ] && echo "lint: ok ($(echo "$files" | wc -w) files)"
exit $status
