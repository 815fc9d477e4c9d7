#!/usr/bin/env bash
# Builds the sandbox test image from Debian packages, with no registry:
# debootstrap (minbase, bookworm) + the host's `node` binary, imported with
# `podman import`. Skipped when the image already exists. The debootstrap
# rootfs is cached as a tarball outside the repository, so a rebuild after
# `podman rmi` takes seconds, not minutes.
#
# Environment:
#   AGENT_LANES_SANDBOX_IMAGE  image name (default localhost/agent-lanes-sandbox:test)
#   AGENT_LANES_CACHE          cache folder (default ~/.cache/agent-lanes)
#   DEBIAN_MIRROR              Debian mirror (default http://deb.debian.org/debian)
#   ENGINE                     podman (default) or docker
set -euo pipefail

IMAGE="${AGENT_LANES_SANDBOX_IMAGE:-localhost/agent-lanes-sandbox:test}"
CACHE_DIR="${AGENT_LANES_CACHE:-$HOME/.cache/agent-lanes}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ENGINE="${ENGINE:-podman}"
SUITE=bookworm
# git is in the image: the agent's container boundary gives the agent its own git repository.
PACKAGES=git
ROOTFS_TAR="$CACHE_DIR/sandbox-rootfs-$SUITE-minbase-$PACKAGES.tar"

started=$(date +%s.%N)
elapsed() { awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }

if ! command -v "$ENGINE" >/dev/null; then
  echo "build-sandbox-image: $ENGINE is not installed (apt-get install -y podman runc, or run scripts/setup-test-env.sh)" >&2
  exit 1
fi
if "$ENGINE" image exists "$IMAGE" 2>/dev/null || "$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1; then
  if "$ENGINE" run --rm --network none "$IMAGE" sh -c 'command -v git' >/dev/null 2>&1; then
    echo "build-sandbox-image: $IMAGE already exists, skipped ($(elapsed) s)"
    exit 0
  fi
  echo "build-sandbox-image: $IMAGE has no git (an older build); building it again"
  "$ENGINE" rmi --force "$IMAGE" >/dev/null
fi
NODE_BIN="$(command -v node || true)"
if [ -z "$NODE_BIN" ]; then
  echo "build-sandbox-image: no node binary on PATH to copy into the image" >&2
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/agent-lanes-rootfs.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$CACHE_DIR" "$rootfs"

if [ -f "$ROOTFS_TAR" ]; then
  echo "build-sandbox-image: using cached rootfs $ROOTFS_TAR"
  tar -C "$rootfs" -xf "$ROOTFS_TAR"
else
  if ! command -v debootstrap >/dev/null; then
    echo "build-sandbox-image: debootstrap is not installed (apt-get install -y debootstrap)" >&2
    exit 1
  fi
  echo "build-sandbox-image: debootstrap --variant=minbase --include=$PACKAGES $SUITE from $MIRROR (about 2 min)"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    echo "build-sandbox-image: debootstrap failed (log above); check that $MIRROR is reachable" >&2
    exit 1
  }
  # Package caches only make the image bigger.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$ROOTFS_TAR.partial" . && mv "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
  echo "build-sandbox-image: cached rootfs at $ROOTFS_TAR ($(elapsed) s)"
fi

install -m 0755 "$(readlink -f "$NODE_BIN")" "$rootfs/usr/local/bin/node"
tar -C "$rootfs" -c . | "$ENGINE" import \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$IMAGE" >"$work/import.log" 2>&1 || {
  cat "$work/import.log" >&2
  echo "build-sandbox-image: $ENGINE import failed (output above)" >&2
  exit 1
}
echo "build-sandbox-image: built $IMAGE with node $("$NODE_BIN" --version) in $(elapsed) s"
