#!/usr/bin/env bash
# Installs what the browser tests need on a fresh Debian machine: Debian's Chromium and the
# Playwright driver. Idempotent and quiet: does nothing when both are already in place.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ ! -x /usr/bin/chromium ]; then
  echo "browser tests: installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi

# node_modules is stale when package-lock.json is newer than npm's own record of the install.
installed_lock="$here/node_modules/.package-lock.json"
if [ ! -f "$installed_lock" ] || [ "$here/package-lock.json" -nt "$installed_lock" ]; then
  echo "browser tests: npm ci in tests/browser" >&2
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
