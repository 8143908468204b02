#!/usr/bin/env bash
# Installs the Debian 12 packages rtml needs to build, test, run its demo and
# benchmark. Idempotent: installs only what is missing; runs apt-get as root or
# through sudo. Set RTML_SKIP_INSTALL=1 to skip (e.g. in a prepared image).
set -euo pipefail

if [ "${RTML_SKIP_INSTALL:-0}" = 1 ]; then exit 0; fi

PACKAGES=(
  # build
  build-essential cmake ninja-build g++ pkg-config
  # libraries rtml links (Debian 12 only)
  libboost-dev libsimdjson-dev libxgboost-dev libyaml-cpp-dev libcli11-dev
  libspdlog-dev libfmt-dev librocksdb-dev libhiredis-dev librdkafka-dev libssl-dev
  # the V2 gRPC service (src/grpc): gRPC C++ and its code generators
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  # tests
  libgtest-dev libgmock-dev curl openssl prometheus python3 python3-venv python3-numpy python3-yaml redis-server redis-tools kcat
  # demo model training and the Python reference peer
  python3-xgboost python3-pandas python3-fastapi python3-uvicorn python3-uvloop
  python3-httptools python3-pydantic python3-redis python3-kafka
  # benchmark (javac: the Kafka Streams peer of bench/stream_features.py)
  wrk nginx-light openjdk-17-jdk-headless
  # the real Kafka broker for the integration tests (fetched by scripts/install-kafka.sh)
  default-jre-headless maven
  # the dashboard page test drives Debian's headless Chromium
  chromium
  # fuzzing (libFuzzer, AddressSanitizer, UBSan): tests/fuzz, make fuzz
  clang-14 libclang-rt-14-dev
  # the container image (make image) and its test: podman, and debootstrap to
  # make its Debian base where no registry is reachable
  podman runc debootstrap
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
