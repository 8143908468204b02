#!/usr/bin/env bash
# Makes the MLServer virtualenv (.venv-mlserver at the repo root, or
# $MLSERVER_VENV) from Debian's python3 with the pinned PyPI packages of
# scripts/requirements-mlserver.txt: MLServer and its XGBoost runtime, for
# bench/v2_protocol.sh (the peer) and tests/integration/test_v2_mlserver.py
# (MLServer's own V2 client code as a second opinion on rtml's protocol).
# Idempotent: does nothing when the venv already holds exactly those pins.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${MLSERVER_VENV:-$PWD/.venv-mlserver}
req=scripts/requirements-mlserver.txt
stamp="$venv/.rtml-requirements"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  echo "install-mlserver: $venv up to date"
  exit 0
fi
if ! /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "install-mlserver: Debian's python3-venv is missing (run ./scripts/install-deps.sh or apt-get install python3-venv)" >&2
  exit 1
fi
echo "install-mlserver: installing $(grep -c '==' "$req") pinned packages into $venv ..."
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$req"
cp "$req" "$stamp"
echo "install-mlserver: done (mlserver $("$venv/bin/python" -c 'import mlserver; print(mlserver.__version__)'))"
