#!/usr/bin/env bash
# Builds rtml's container image (deploy/Dockerfile) with podman, or docker
# when that is what the machine has: `make image`, or
#
#   scripts/image.sh [--tag rtml:dev]
#
# With podman and no registry to pull from (as on the machines rtml is
# tested on), the Dockerfile's base, debian:bookworm-slim, is made first
# from Debian's own packages (debootstrap --variant=minbase) and tagged
# locally. Prints the image's size at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=rtml:dev
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=$2; shift 2 ;;
    *) echo "usage: $0 [--tag NAME:TAG]" >&2; exit 2 ;;
  esac
done
BASE=debian:bookworm-slim

if ! command -v podman >/dev/null && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  echo "image: building $TAG with docker"
  docker build -f deploy/Dockerfile -t "$TAG" .
  docker image ls "$TAG"
  exit 0
fi
command -v podman >/dev/null || { echo "image: needs podman (scripts/install-deps.sh installs it) or a running docker" >&2; exit 1; }
source scripts/podman-env.sh

if ! podman image exists "$BASE"; then
  if podman pull -q "docker.io/library/$BASE" >/dev/null 2>&1; then
    echo "image: pulled $BASE"
  else
    command -v debootstrap >/dev/null || { echo "image: no registry reachable and no debootstrap to make $BASE: apt-get install debootstrap" >&2; exit 1; }
    echo "image: no registry reachable; making $BASE from Debian's packages (debootstrap, ~1 min)"
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
    # What makes Debian's official image "slim": no documentation, manuals
    # or translations, now or from later installs, and no apt caches.
    cat > "$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
CFG
    cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
      "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | podman import -q - "$BASE" >/dev/null
    echo "image: made $BASE"
  fi
fi
echo "image: building $TAG (compiles rtml in the first stage: a few minutes)"
podman build -q --format docker --network host --pull=never -f deploy/Dockerfile -t "$TAG" . >/dev/null
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$TAG"
