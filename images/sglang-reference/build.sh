#!/usr/bin/env bash
# Build the SGLang reference-engine image glmverify/reference-sglang-cpu:0.5.23: the real SGLang
# server (sglang 0.5.23) on CPU in a Debian bookworm minbase rootfs, made without any registry, the
# same way images/reference builds the vLLM one:
#
#   1. the base rootfs from images/base/build.sh;
#   2. `pip download` of torch 2.13.0 (CPU) + requirements.txt, and `--no-deps` sglang 0.5.23 and
#      torchvision 0.28.0, on the host (its pip finds the CPU torch in its local wheel cache, which the
#      chroot cannot see), cached under build/images/wheels-sglang-*;
#   3. in a chroot: images/sglang-reference/install.sh /opt/venv from the bind-mounted wheels
#      (PIP_OFFLINE): the same install, torchvision guard, CPU sgl_kernel shim and stand-in plugin
#      entry point as the host venv of row reference-sglang;
#   4. `docker import` of the rootfs.
#
#   images/sglang-reference/build.sh            # idempotent: skips when the image exists
#   FORCE=1 images/sglang-reference/build.sh    # rebuild (reuses the cached base rootfs and wheels)
#
# Env: IMAGE (default glmverify/reference-sglang-cpu:0.5.23), PYTHON (host interpreter for
# `pip download`, default python3), GLMVERIFY_BUILD_DIR (<repo>/build).
# Needs root (chroot, mount), debootstrap and a running Docker daemon.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SGLANG_VERSION=0.5.23
IMAGE="${IMAGE:-glmverify/reference-sglang-cpu:$SGLANG_VERSION}"
PYTHON="${PYTHON:-python3}"
SUITE="${SUITE:-bookworm}"
WORK="${GLMVERIFY_BUILD_DIR:-$REPO/build}/images"
BASE_TARBALL="$WORK/debian-minbase-$SUITE.tar"
WHEELS="$WORK/wheels-sglang-$SGLANG_VERSION"
export GLMVERIFY_BUILD_DIR="${GLMVERIFY_BUILD_DIR:-$REPO/build}" SUITE

log() { printf '[images/sglang-reference %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
START=$SECONDS

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE exists; nothing to do (FORCE=1 rebuilds)"
    exit 0
fi
[[ $(id -u) == 0 ]] || { log "needs root (chroot, mount)"; exit 1; }
docker info >/dev/null 2>&1 || { log "the Docker daemon is not reachable"; exit 1; }
mkdir -p "$WORK"

# 1. base rootfs ---------------------------------------------------------------------------------
if [[ ! -s "$BASE_TARBALL" ]]; then
    log "base rootfs missing: building it (images/base/build.sh)"
    FORCE=1 "$REPO/images/base/build.sh"
fi

ROOTFS="$(mktemp -d "$WORK/rootfs-sglang-reference.XXXXXX")"
MOUNTS=()
cleanup() {

    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
    rm -rf "$ROOTFS"
}
trap cleanup EXIT
tar -C "$ROOTFS" -xf "$BASE_TARBALL"
in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

# 2. wheels, downloaded on the host ---------------------------------------------------------------
ROOT_PY="$(in_root python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
HOST_PY="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ ! -f "$WHEELS/.complete" ]]; then
    t0=$SECONDS
    PLATFORM_ARGS=()
    if [[ "$ROOT_PY" != "$HOST_PY" ]]; then
        log "host python $HOST_PY != rootfs python $ROOT_PY: downloading binary wheels for $ROOT_PY"
        PLATFORM_ARGS=(--python-version "$ROOT_PY" --only-binary=:all:)
    fi
    log "pip download torch 2.13.0 + requirements.txt, sglang $SGLANG_VERSION and torchvision (host $PYTHON)"
    mkdir -p "$WHEELS"
    # (grep drops pip's warnings about local index directories without the package)
    "$PYTHON" -m pip download -q -d "$WHEELS" "${PLATFORM_ARGS[@]}" torch==2.13.0 -r "$HERE/requirements.txt" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    "$PYTHON" -m pip download -q --no-deps -d "$WHEELS" "${PLATFORM_ARGS[@]}" "sglang==$SGLANG_VERSION" torchvision==0.28.0 \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    touch "$WHEELS/.complete"
    log "wheels downloaded in $((SECONDS - t0))s ($(du -sh "$WHEELS" | cut -f1))"
else
    log "reusing wheels in $WHEELS"
fi

# 3. offline install in the chroot ----------------------------------------------------------------
t0=$SECONDS
mkdir -p "$ROOTFS/wheels" "$ROOTFS/proc" "$ROOTFS/sys"
mount --bind "$WHEELS" "$ROOTFS/wheels" && MOUNTS+=("$ROOTFS/wheels")
mount -o remount,bind,ro "$ROOTFS/wheels" 2>/dev/null || true
mount -t proc proc "$ROOTFS/proc" && MOUNTS+=("$ROOTFS/proc")
mkdir -p "$ROOTFS/opt/sglang-reference"
cp -r "$HERE/install.sh" "$HERE/requirements.txt" "$HERE/sgl_kernel" "$ROOTFS/opt/sglang-reference/"
log "install.sh /opt/venv in the chroot (offline, from the host's wheels)"
in_root env PIP_OFFLINE=/wheels PIP_NO_CACHE_DIR=1 bash /opt/sglang-reference/install.sh /opt/venv
log "installed in $((SECONDS - t0))s"
for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[$i]}"; done
MOUNTS=()
rmdir "$ROOTFS/wheels"
rm -rf "$ROOTFS/root/.cache" "$ROOTFS"/tmp/* 2>/dev/null || true

# 4. docker import -------------------------------------------------------------------------------
t0=$SECONDS
tar -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SGLANG_USE_CPU_ENGINE=1' \
    --change 'WORKDIR /' \
    --change 'EXPOSE 30000' \
    --change "LABEL org.opencontainers.image.title=glmverify-reference-sglang-cpu org.opencontainers.image.version=$SGLANG_VERSION" \
    --change 'CMD ["python3", "-m", "sglang.launch_server", "--help"]' \
    - "$IMAGE" >/dev/null
log "imported $IMAGE in $((SECONDS - t0))s ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f GB", $1/1e9}'))"
log "done in $((SECONDS - START))s"
