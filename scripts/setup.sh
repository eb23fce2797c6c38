#!/usr/bin/env bash
# The README's first command: install everything, then run the main job on the default backend:
# the whole notebook series, executed headless, with its HTML in out/notebooks/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "==> npm run notebooks"
# Labs need root (network namespaces); the notebooks bring them up themselves.
if [ "$(id -u)" -eq 0 ]; then npm run --silent notebooks; else sudo npm run --silent notebooks; fi
