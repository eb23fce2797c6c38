#!/usr/bin/env bash
# The README's first command: install everything, then run the main job on the default backend.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
echo "==> npx kube-netlab demo"
if [ "$(id -u)" -eq 0 ]; then npx kube-netlab demo; else sudo npx kube-netlab demo; fi
