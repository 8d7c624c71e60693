#!/usr/bin/env bash
# Install the Debian packages paquete's tests need, if they are missing.
#
# Idempotent: on a machine that already has everything it checks a few paths
# and exits 0 without touching apt. When something is missing it must run as
# root: it runs `apt-get update` once (quietly) and installs only what is
# missing (reinstalling a package whose file is gone), without starting any
# service.
#
#   /usr/sbin/nginx   <- nginx  (core binary; the end-to-end tests start their own
#                                instances with a private prefix, never the system one)
#   git               <- git    (git sources: bundles, clone through `paquete serve`)
#   python3 -m pip    <- python3 python3-pip python3-venv (pip install through `paquete serve`)
#   chromium          <- chromium fonts-dejavu-core (headless screenshot of `paquete serve`'s catalog page)
#   zstd              <- zstd   (the --patch-from floor test/one-release.test.ts holds an update to)
set -euo pipefail

missing=()

# nginx: the tests run /usr/sbin/nginx explicitly.
if [ ! -x /usr/sbin/nginx ]; then
  missing+=(nginx)
fi
if ! command -v git >/dev/null 2>&1; then
  missing+=(git)
fi
if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
  missing+=(python3 python3-pip python3-venv)
fi

if ! command -v zstd >/dev/null 2>&1; then
  missing+=(zstd)
fi

if ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium fonts-dejavu-core)   # a font, or the page renders without text
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-system-deps: missing Debian packages: ${missing[*]}" >&2
  echo "ensure-system-deps: not root, cannot install them; run as root:" >&2
  echo "  sudo $0" >&2
  echo "or install them yourself: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-system-deps: missing ${missing[*]} and no apt-get on this machine; install them by hand" >&2
  exit 1
fi

echo "ensure-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive

# Do not let the package scripts start the system nginx (port 80) on machines
# that have no policy-rc.d of their own; remove ours afterwards.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
log=$(mktemp)
cleanup() {
  rm -f "$log"
  if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; fi
}
trap cleanup EXIT

if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends --reinstall "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure-system-deps: installing ${missing[*]} failed (apt output above)" >&2
  exit 1
fi

# The tests never use a system nginx (they run their own instances on free
# ports); only the binary matters.
if [ ! -x /usr/sbin/nginx ]; then
  echo "ensure-system-deps: /usr/sbin/nginx still missing after installing nginx" >&2
  exit 1
fi
echo "ensure-system-deps: done" >&2
