#!/usr/bin/env bash
# Builds everything and runs the whole test suite with ctest (unit, store conformance and
# end-to-end tests against real dtmd processes and real gRPC branch services).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 300 -j2 "$@"
