#!/usr/bin/env bash
# Installs the Go tools the deployment checks use, pinned, from the Go
# module proxy, into .tools/bin: kustomize (renders deploy/kubernetes'
# overlays for tests/integration/test_deploy.py). Idempotent: does nothing
# when the pinned version is there. Needs Go (>= 1.22) on PATH or in
# /usr/local/go.
set -euo pipefail
cd "$(dirname "$0")/.."
KUSTOMIZE=v5.7.1
bin=$PWD/.tools/bin
if [ -x "$bin/kustomize" ] && "$bin/kustomize" version 2>/dev/null | grep -q "$KUSTOMIZE"; then
  echo "install-tools: kustomize $KUSTOMIZE present"
  exit 0
fi
go=$(command -v go || true)
[ -n "$go" ] || [ ! -x /usr/local/go/bin/go ] || go=/usr/local/go/bin/go
[ -n "$go" ] || { echo "install-tools: needs Go >= 1.22 to build kustomize (https://go.dev/doc/install)" >&2; exit 1; }
echo "install-tools: building kustomize $KUSTOMIZE from the Go module proxy (~1 min) ..."
mkdir -p "$bin"
GOBIN=$bin GOFLAGS=-mod=mod "$go" install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE"
echo "install-tools: $("$bin/kustomize" version)"
