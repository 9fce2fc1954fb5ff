#!/usr/bin/env bash
# Writes the module map of docs/architecture.md from the code: one row per source module of the
# library crates, with the first line of its `//!` doc. With --check, only verifies the map is
# current (what scripts/test-all.sh runs), so the map cannot drift from the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
doc=docs/architecture.md
begin='<!-- module map: begin (scripts/module-map.sh writes this) -->'
end='<!-- module map: end -->'

map() {
  echo "$begin"
  echo
  echo "| module | what it owns |"
  echo "|---|---|"
  for crate in protocol storage tiered broker testkit; do
    find "$crate/src" -name '*.rs' -not -path '*/tests/*' -not -name 'tests.rs' | LC_ALL=C sort | while read -r f; do
      # The whole first paragraph of the module doc, on one line.
      line=$(awk '/^\/\/!/ { sub(/^\/\/! ?/, ""); if ($0 == "") exit; printf "%s ", $0; next } { exit }' "$f" | sed 's/ *$//; s/|/\\|/g')
      echo "| \`$f\` | ${line:-(no module doc)} |"
    done
  done
  echo
  echo "$end"
}

current() { awk -v b="$begin" -v e="$end" '$0 == b { on = 1 } on { print } $0 == e { on = 0 }' "$doc"; }

if [[ "${1:-}" == "--check" ]]; then
  if ! diff <(current) <(map) >/dev/null; then
    echo "docs/architecture.md: the module map is out of date; run scripts/module-map.sh" >&2
    diff <(current) <(map) | head -20 >&2
    exit 1
  fi
  echo "module map current"
  exit 0
fi

if ! grep -qF "$begin" "$doc"; then
  echo "$doc has no module map markers" >&2
  exit 1
fi
tmp=$(mktemp)
awk -v b="$begin" -v e="$end" -v mapfile=<(map) '
  $0 == b { while ((getline line < mapfile) > 0) print line; skip = 1; next }
  $0 == e { skip = 0; next }
  !skip { print }' "$doc" > "$tmp"
mv "$tmp" "$doc"
echo "wrote the module map of $doc"
