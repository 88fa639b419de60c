#!/usr/bin/env bash
# Install a Debian package when the program a test needs from it is missing.
#   ensure_debian_package.sh PROGRAM PACKAGE WHY
# The browser tests need /usr/bin/chromium (package chromium; Playwright's own browser
# download is never used); the metrics and alerting tests need promtool (package
# prometheus). Nothing is downloaded from anywhere but Debian's archive.
set -euo pipefail
program=$1 package=$2 why=$3

if command -v "$program" >/dev/null 2>&1; then
  echo "ensure: $program is installed ($why)"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "ensure: $program is missing; install it as root: apt-get install $package" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure: $program is missing and this is not a Debian system (no apt-get)." >&2
  echo "  Install $package yourself ($why)." >&2
  exit 1
fi

echo "ensure: installing Debian's $package package ($why)"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q "$package"
command -v "$program" >/dev/null 2>&1 || {
  echo "ensure: apt-get install $package did not provide $program" >&2
  exit 1
}
