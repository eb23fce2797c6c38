#!/usr/bin/env bash
# A base for the Dockerfile where no image registry is reachable: Debian bookworm from
# debootstrap, using the Debian mirror apt uses here, plus this machine's Node.js and npm.
#
#   bash scripts/container/debian-base.sh kube-netlab-base:bookworm
#   docker build --build-arg BASE=kube-netlab-base:bookworm -t kube-netlab .
#
# DOCKER (the CLI), MIRROR and NODE override what it uses. Root, Linux, debootstrap.
set -euo pipefail
tag=${1:?usage: debian-base.sh TAG}
docker=${DOCKER:-docker}
node=$(readlink -f "${NODE:-$(command -v node)}")
# npm's bin is a link to …/lib/node_modules/npm/bin/npm-cli.js: the package is two folders up.
npm_package=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")

# The mirror apt uses for Debian (bookworm's first, any Debian suite's next), else Debian's own.
mirror=${MIRROR:-}
if [ -z "$mirror" ] && command -v apt-get >/dev/null; then
  mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Codename: bookworm' 'Label: Debian' 2>/dev/null | head -n1)
  [ -n "$mirror" ] || mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Label: Debian' 2>/dev/null | head -n1)
fi
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}

work=$(mktemp -d "${TMPDIR:-/tmp}/kube-netlab-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

echo "==> debootstrap --variant=minbase bookworm from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
  || { tail -n 20 "$work/debootstrap.log" >&2; echo "debootstrap failed (log above)" >&2; exit 1; }

echo "==> Node.js $("$node" --version) from $node, npm from $npm_package"
install -D -m 0755 "$node" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules"
cp -a "$npm_package" "$root/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
# This machine's node must run on bookworm's C library; exit 3 says it does not.
if ! chroot "$root" /usr/bin/env -i /usr/local/bin/node --version > /dev/null 2> "$work/node.err"; then
  echo "this machine's Node.js ($node) does not run on Debian bookworm: $(tail -n 1 "$work/node.err")" >&2
  exit 3
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

echo "==> docker import $tag"
tar --numeric-owner -C "$root" -c . \
  | "$docker" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["bash"]' - "$tag" > /dev/null
echo "$tag"
