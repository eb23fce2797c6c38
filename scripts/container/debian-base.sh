#!/usr/bin/env bash
# A base for the Dockerfile where no image registry is reachable: Debian bookworm from
# debootstrap, using the Debian mirror apt uses here, plus this machine's Node.js and npm.
#
#   bash scripts/container/debian-base.sh kube-netlab-base:bookworm
#   docker build --build-arg BASE=kube-netlab-base:bookworm -t kube-netlab .
#
# DOCKER (the CLI), MIRROR and NODE override what it uses. CACHE, a folder: debootstrap's tree is
# kept there as a tar and used instead of a new debootstrap for a week (an older tree is fine:
# the Dockerfile's apt-get reads the mirror's current package lists). `--print-mirror` prints
# the mirror it would use and stops. Root, Linux, debootstrap.
set -euo pipefail
tag=${1:?usage: debian-base.sh TAG | --print-mirror}
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
if [ "$tag" = --print-mirror ]; then echo "$mirror"; exit 0; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kube-netlab-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

cache=${CACHE:+$CACHE/bookworm-minbase.tar}
if [ -n "$cache" ] && [ -n "$(find "$cache" -mtime -7 2>/dev/null)" ]; then
  echo "==> debootstrap's bookworm from $cache"
  mkdir -p "$root"
  tar --numeric-owner -C "$root" -xf "$cache"
else
  echo "==> debootstrap --variant=minbase bookworm from $mirror"
  started=$SECONDS
  debootstrap --variant=minbase bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; echo "debootstrap failed (log above)" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  echo "    debootstrap took $((SECONDS - started)) s"
  if [ -n "$cache" ]; then
    mkdir -p -m 0700 "$CACHE"
    # Written aside and renamed: an interrupted run leaves no half tar to be used next time.
    tar --numeric-owner -C "$root" -cf "$cache.part" . && mv "$cache.part" "$cache"
  fi
fi

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

echo "==> docker import $tag"
tar --numeric-owner -C "$root" -c . \
  | "$docker" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["bash"]' - "$tag" > /dev/null
echo "$tag"
