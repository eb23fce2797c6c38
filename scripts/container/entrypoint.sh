#!/usr/bin/env bash
# The container image's entrypoint (under tini). Whatever outlives the container goes to /out:
# `docker run -v "${PWD}/kube-netlab-out:/out" …` keeps it on the host (out/notebooks and runs/
# in the image point there). With no command, Jupyter serves the notebooks on port 8888;
# with one, it runs that (`npx kube-netlab demo`, `npm run notebooks -- 03`, bash).
set -euo pipefail
cd /kube-netlab
mkdir -p /out/notebooks /out/runs
if [ $# -eq 0 ]; then
  # All addresses of the container: `-p 8888:8888` forwards the host's port to it.
  export JUPYTER_IP=0.0.0.0
  exec npm run --silent jupyter
fi
exec "$@"
