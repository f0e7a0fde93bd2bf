#!/bin/sh
# Installs what `npm test` needs beyond node_modules on a Debian/Ubuntu machine, when missing:
#   chromium  the browser the editor test drives (test/browser/, via playwright-core)
#   python3   the Python client's tests (test/python/)
#   strace    the at-most-once tests freeze or kill a daemon inside one step (test/engine/at-most-once)
#   faketime  the same tests run a daemon whose clock is an hour ahead
# Idempotent: installs nothing when all are present. As root it runs `apt-get update` (once)
# and `apt-get install -y` for what is missing; as another user it only says what to install and
# exits 1. Environment: CHROMIUM (the browser's path, default /usr/bin/chromium, as the test uses).
set -eu

chromium_bin=${CHROMIUM:-/usr/bin/chromium}
missing=""

if [ -x "$chromium_bin" ]; then
  echo "ensure-test-deps: chromium present ($chromium_bin)"
else
  missing="$missing chromium"
fi
if command -v python3 >/dev/null 2>&1; then
  echo "ensure-test-deps: python3 present ($(command -v python3))"
else
  missing="$missing python3"
fi

for tool in strace faketime; do
  if command -v "$tool" >/dev/null 2>&1; then
    echo "ensure-test-deps: $tool present ($(command -v "$tool"))"
  else
    missing="$missing $tool"
  fi
done

if [ -z "$missing" ]; then
  echo "ensure-test-deps: nothing to install"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-test-deps: missing:$missing" >&2
  echo "ensure-test-deps: install them as root, e.g.: sudo apt-get update && sudo apt-get install -y$missing" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-test-deps: missing:$missing, and there is no apt-get here: install them with this system's package manager" >&2
  exit 1
fi

echo "ensure-test-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086 # one word per package
apt-get install -y $missing

for package in $missing; do
  case $package in
    chromium) [ -x "$chromium_bin" ] || { echo "ensure-test-deps: chromium installed but $chromium_bin is missing" >&2; exit 1; } ;;
    python3 | strace | faketime) command -v "$package" >/dev/null 2>&1 || { echo "ensure-test-deps: $package installed but not on PATH" >&2; exit 1; } ;;
  esac
done
echo "ensure-test-deps: installed:$missing"
