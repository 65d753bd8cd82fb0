#!/usr/bin/env bash
# npm run setup: make sure the Debian packages in scripts/debian-packages.txt are installed. Idempotent: one
# dpkg-query when everything is there. As root it installs what is missing (one apt-get update first); otherwise it
# prints the exact command to run and exits 2. PERSONA_SETUP=skip skips it (you manage the packages yourself).
# Exit codes: 0 ready; 2 packages missing and not installable from here (not root, no apt); 4 apt-get failed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list="$here/debian-packages.txt"

if [[ ${PERSONA_SETUP:-} == skip ]]; then
  echo "setup: skipped (PERSONA_SETUP=skip)" >&2
  exit 0
fi

packages=()
while read -r first _; do
  [[ -z $first || $first == \#* ]] || packages+=("$first")
done <"$list"

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup: this is not a Debian-based system (no dpkg-query); install the equivalents of: ${packages[*]}" >&2
  exit 2
fi

# One dpkg-query for all of them; a package dpkg has never heard of is simply absent from its answer.
declare -A status=()
while read -r name abbrev; do status[$name]=$abbrev; done < <(
  dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${packages[@]}" 2>/dev/null || true
)
missing=()
for p in "${packages[@]}"; do
  [[ ${status[$p]:-} == ii ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} Debian packages are installed" >&2
  exit 0
fi

line="apt-get install -y --no-install-recommends ${missing[*]}"
if ((EUID != 0)); then
  echo "setup: missing Debian packages: ${missing[*]}" >&2
  echo "setup: as root, run: sudo apt-get update && sudo $line" >&2
  exit 2
fi

echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
started=$SECONDS
if ! apt-get update -q >&2 || ! apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >&2; then
  echo "setup: apt-get failed installing: ${missing[*]} (see its output above); try: $line" >&2
  exit 4
fi
echo "setup: installed ${missing[*]} in $((SECONDS - started)) s" >&2
