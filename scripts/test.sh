#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the test servers, then checks formatting and
# lints and runs every test (unit tests, and integration tests against real servers that the
# tests start themselves in temporary folders).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
