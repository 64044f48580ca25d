#!/usr/bin/env bash
# Installs the Debian 12 packages dtm-cpp needs to build, test (every variant of
# scripts/test.sh) and benchmark.
# Idempotent: only calls apt when something is missing. Must run as root (or via sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang-format git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libsqlite3-dev libpq-dev
  # HTTP: Beast/Asio (the server), libcurl (branch calls), JSON; OpenSSL for the listeners' TLS
  # (libssl-dev) and the openssl command that makes the TLS tests' CA.
  libboost-dev libcurl4-openssl-dev nlohmann-json3-dev libssl-dev openssl
  libgtest-dev libgmock-dev libbenchmark-dev
  postgresql-15 util-linux procps
  python3-grpcio python3-protobuf python3-psycopg2
  # scripts/test.sh's clang variants: sanitizer runtimes (libclang-rt-14-dev has libFuzzer's
  # too, for the fuzz variant's -fsanitize=fuzzer), llvm-symbolizer for their stack traces,
  # clang-tidy; dpkg-dev unpacks Debian's Abseil source (scripts/abseil-source.sh).
  clang libclang-rt-14-dev llvm clang-tidy dpkg-dev
  # Operations: Prometheus metrics (prometheus-cpp's core and text serializer), the deploy
  # tests (kubectl kustomize renders deploy/k8s, PyYAML reads what it rendered), and the admin
  # page's test in a real headless browser.
  prometheus-cpp-dev python3-yaml chromium chromium-driver python3-selenium
  # The infrastructure-fault tests (tests/faults): a Patroni cluster on etcd for PostgreSQL
  # failover, network namespaces with nftables/iptables rules and a packet-delaying NFQUEUE
  # program, libfaketime for clock jumps.
  patroni etcd-server python3-etcd iproute2 nftables iptables libnetfilter-queue-dev faketime
)

# kubectl (for `kubectl kustomize`): Debian's kubernetes-client, unless a kubectl is already
# installed (Google's or Kubernetes' own kubectl package conflicts with Debian's).
if ! command -v kubectl >/dev/null; then
  PACKAGES+=(kubernetes-client)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# The Node.js example client needs node and npm; the machine's own Node.js is fine.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
