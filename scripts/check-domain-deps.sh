#!/usr/bin/env bash
# skein-domain must stay pure: none of these may appear among its normal
# dependencies (direct or transitive).
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden=(diesel actix-web utoipa reqwest)
status=0
for crate in "${forbidden[@]}"; do
  out=$(cargo tree -p skein-domain -e normal -i "$crate" 2>&1 || true)
  # cargo tree answers "did not match any packages" when the crate is not in
  # skein-domain's graph; anything else is a dependency path.
  if ! grep -q "did not match any packages" <<<"$out"; then
    echo "skein-domain depends on $crate:" >&2
    echo "$out" >&2
    status=1
  fi
done
# Guard against the check passing vacuously: a real dependency must be found.
if grep -q "did not match any packages" <<<"$(cargo tree -p skein-domain -e normal -i serde 2>&1 || true)"; then
  echo "check-domain-deps: cargo tree did not find serde; the check is broken" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "skein-domain depends on none of: ${forbidden[*]}"
exit "$status"
