#!/usr/bin/env bash
# Build the base image glmverify/debian-minbase:bookworm: a Debian bookworm minbase rootfs
# (python3, python3-venv, ca-certificates, libnuma1) made with debootstrap and `docker import`ed.
# No registry is needed. The rootfs is kept as a tarball for images/reference/build.sh.
#
#   images/base/build.sh            # skips when the image exists
#   FORCE=1 images/base/build.sh    # rebuild
#
# Env: IMAGE (default glmverify/debian-minbase:bookworm), SUITE (bookworm), MIRROR (Debian
# mirror, default deb.debian.org), GLMVERIFY_BUILD_DIR (default <repo>/build).
# Needs root (debootstrap, chroot), debootstrap and a running Docker daemon.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
IMAGE="${IMAGE:-glmverify/debian-minbase:bookworm}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
PACKAGES="python3,python3-venv,ca-certificates,libnuma1"
WORK="${GLMVERIFY_BUILD_DIR:-$REPO/build}/images"
TARBALL="$WORK/debian-minbase-$SUITE.tar"

log() { printf '[images/base %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE exists; nothing to do (FORCE=1 rebuilds)"
    exit 0
fi
[[ $(id -u) == 0 ]] || { log "needs root (debootstrap, chroot)"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
docker info >/dev/null 2>&1 || { log "the Docker daemon is not reachable"; exit 1; }

mkdir -p "$WORK"
if [[ "${FORCE:-0}" == 1 || ! -s "$TARBALL" ]]; then
    ROOTFS="$(mktemp -d "$WORK/rootfs-base.XXXXXX")"
    trap 'rm -rf "$ROOTFS"' EXIT
    t0=$SECONDS
    log "debootstrap --variant=minbase $SUITE (+ $PACKAGES)"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log" >&2; log "debootstrap failed (log: $WORK/debootstrap.log)"; exit 1; }
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    log "debootstrap done in $((SECONDS - t0))s"
    tar -C "$ROOTFS" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$ROOTFS"
    trap - EXIT
fi

t0=$SECONDS
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL org.opencontainers.image.title=glmverify-debian-minbase' \
    --change 'CMD ["/bin/bash"]' \
    "$TARBALL" "$IMAGE" >/dev/null
log "imported $IMAGE in $((SECONDS - t0))s ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
