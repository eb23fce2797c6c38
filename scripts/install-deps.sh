#!/usr/bin/env bash
# Installs what kube-netlab and its tests need on Debian/Ubuntu: the kernel's userspace tools
# (from apt) and the npm dependencies (npm ci, whose prepare script builds the kit into out/build/).
# Safe to run again.
#
# --container-test: also what test/container.test.ts needs, Debian's docker.io and debootstrap.
# Their services are not started: the test starts a Docker daemon of its own, on a socket of its
# own, that never touches the host's network (a started docker.service would add a bridge and
# iptables rules to it).
set -euo pipefail
cd "$(dirname "$0")/.."

# Jupyter comes from Debian's packages (on /usr/bin/python3); the notebooks run on tslab.
APT_PACKAGES=(iproute2 iptables ipset nftables conntrack ipvsadm util-linux procps
  jupyter-nbconvert jupyter-client python3-ipykernel jupyter-notebook)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "${1:-}" = --container-test ]; then
  APT_PACKAGES+=(debootstrap)
  # A machine with Docker's own packages (docker-ce) has a dockerd, and docker.io conflicts with them.
  command -v dockerd >/dev/null || APT_PACKAGES+=(docker.io)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  as_root apt-get update -qq
  # policy-rc.d's 101 tells maintainer scripts not to start services (docker, containerd) now.
  policy=/usr/sbin/policy-rc.d
  ours=
  if [ ! -e "$policy" ]; then
    ours=1
    trap 'as_root rm -f "$policy"' EXIT
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 0755 "$policy"
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$ours" ]; then as_root rm -f "$policy"; trap - EXIT; fi
fi

# tslab require()s ES modules (execa): Node 20.19+ or 22.12+ does that without a flag; 21 and
# 22.0-22.11 do not.
node_version=$(node -p 'process.versions.node' 2>/dev/null || echo none)
if ! node -e '
  const [a, b] = process.versions.node.split(".").map(Number);
  process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a >= 23 ? 0 : 1);' 2>/dev/null; then
  echo "Node.js 20.19+ or 22.12+ is required (found ${node_version})." >&2
  exit 1
fi

echo "==> npm ci (installs, then builds out/build/)"
npm ci --no-audit --no-fund --loglevel=error
