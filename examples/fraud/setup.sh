#!/usr/bin/env bash
# Prepares the fraud demo's feature store (run by `make run` before serving):
# writes the offline user profiles if missing or a day old, records the
# definitions in the store's registry, and materializes what is new.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rtml=${RTML_BIN:-$here/../../build/rtml}
csv=$here/data/user_profile.csv
if [ ! -f "$csv" ] || [ -n "$(find "$csv" -mmin +1440)" ]; then
  /usr/bin/python3 "$here/make_features.py" --out "$csv"
fi
"$rtml" features apply --config "$here/rtml.yaml"
"$rtml" features materialize-incremental --config "$here/rtml.yaml"
