#!/usr/bin/env bash
# Builds dtmd (and the examples) and runs it with no configuration: embedded SQLite store in
# ./dtm.db, gRPC on 0.0.0.0:36790. Extra arguments go to dtmd (e.g. --listen=127.0.0.1:9000).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# Also the examples, so the README's quick start can run them next to this dtmd.
"$root/scripts/build.sh" dtmd dtm-demo dtmctl bank-server bank-client bank_proto_python
exec "$root/${BUILD_DIR:-build}/bin/dtmd" "$@"
