#!/usr/bin/env bash
# Regenerates tests/testdata/parity/ with Debian's XGBoost 1.7 and the pinned
# PyPI XGBoost release (installed into .venv-gen from scripts/requirements-gen.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/testdata/parity
mkdir -p "$out"
if [ ! -x .venv-gen/bin/python ]; then
  /usr/bin/python3 -m venv .venv-gen
  .venv-gen/bin/pip install -q -r scripts/requirements-gen.txt
fi
/usr/bin/python3 scripts/gen_testdata.py rows "$out"
/usr/bin/python3 scripts/gen_testdata.py models "$out" xgb-debian
.venv-gen/bin/python scripts/gen_testdata.py models "$out" xgb-pypi
