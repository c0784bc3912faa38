# shellcheck shell=bash
# The steps images/reference/build.sh and images/sglang-reference/build.sh share, sourced by both
# after they set IMAGE_RECIPE (the log prefix), IMAGE and WHEELS:
#
#   begin_build            exit 0 when $IMAGE exists (FORCE=1 rebuilds); needs root and the daemon
#   unpack_base_rootfs     the base rootfs (images/base/build.sh) unpacked into a fresh $ROOTFS,
#                          removed at exit with every mount undone; in_root runs in its chroot
#   wheels_cached          true when $WHEELS holds a complete download (then says so)
#   host_pip_download ARGS `pip download` on the host into $WHEELS for the rootfs's python (binary
#                          wheels of its version when the host's differs)
#   wheels_done            marks $WHEELS complete
#   mount_for_install      $WHEELS read-only at /wheels and /proc in the rootfs
#   end_install            undo those mounts, drop caches
#   import_rootfs CHANGE.. `docker import` of the rootfs as $IMAGE: PATH of /opt/venv, LANG and
#                          WORKDIR, then the recipe's own --change lines
#
# Env read here: PYTHON (host interpreter for `pip download`, default python3), SUITE (bookworm),
# GLMVERIFY_BUILD_DIR (<repo>/build), FORCE.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
SUITE="${SUITE:-bookworm}"
GLMVERIFY_BUILD_DIR="${GLMVERIFY_BUILD_DIR:-$REPO/build}"
export GLMVERIFY_BUILD_DIR SUITE
WORK="$GLMVERIFY_BUILD_DIR/images"
BASE_TARBALL="$WORK/debian-minbase-$SUITE.tar"
START=$SECONDS
MOUNTS=()

log() { printf '[images/%s %s] %s\n' "$IMAGE_RECIPE" "$(date +%H:%M:%S)" "$*" >&2; }

begin_build() {
    if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
        log "$IMAGE exists; nothing to do (FORCE=1 rebuilds)"
        exit 0
    fi
    [[ $(id -u) == 0 ]] || { log "needs root (chroot, mount)"; exit 1; }
    docker info >/dev/null 2>&1 || { log "the Docker daemon is not reachable"; exit 1; }
    mkdir -p "$WORK"
}

_unmount_all() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "$@" "${MOUNTS[$i]}" 2>/dev/null || true; done
    MOUNTS=()
}

_cleanup_rootfs() {
    _unmount_all -l
    rm -rf "$ROOTFS"
}

unpack_base_rootfs() {
    if [[ ! -s "$BASE_TARBALL" ]]; then
        log "base rootfs missing: building it (images/base/build.sh)"
        FORCE=1 "$REPO/images/base/build.sh"
    fi
    ROOTFS="$(mktemp -d "$WORK/rootfs-$IMAGE_RECIPE.XXXXXX")"
    trap _cleanup_rootfs EXIT
    tar -C "$ROOTFS" -xf "$BASE_TARBALL"
    ROOT_PY="$(in_root python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    HOST_PY="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    PLATFORM_ARGS=()
    if [[ "$ROOT_PY" != "$HOST_PY" ]]; then
        PLATFORM_ARGS=(--python-version "$ROOT_PY" --only-binary=:all:)
    fi
}

in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

wheels_cached() {
    if [[ -f "$WHEELS/.complete" ]]; then
        log "reusing wheels in $WHEELS"
        return 0
    fi
    WHEELS_T0=$SECONDS
    [[ "$ROOT_PY" == "$HOST_PY" ]] || log "host python $HOST_PY != rootfs python $ROOT_PY: downloading binary wheels for $ROOT_PY"
    mkdir -p "$WHEELS"
    return 1
}

host_pip_download() {
    # (grep drops pip's warnings about local index directories without the package)
    "$PYTHON" -m pip download -q -d "$WHEELS" "${PLATFORM_ARGS[@]}" "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

wheels_done() {
    touch "$WHEELS/.complete"
    log "wheels downloaded in $((SECONDS - WHEELS_T0))s ($(du -sh "$WHEELS" | cut -f1))"
}

mount_for_install() {
    mkdir -p "$ROOTFS/wheels" "$ROOTFS/proc" "$ROOTFS/sys"
    mount --bind "$WHEELS" "$ROOTFS/wheels" && MOUNTS+=("$ROOTFS/wheels")
    mount -o remount,bind,ro "$ROOTFS/wheels" 2>/dev/null || true
    mount -t proc proc "$ROOTFS/proc" && MOUNTS+=("$ROOTFS/proc")
}

end_install() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[$i]}"; done
    MOUNTS=()
    rmdir "$ROOTFS/wheels"
    rm -rf "$ROOTFS/root/.cache" "$ROOTFS"/tmp/* 2>/dev/null || true
}

import_rootfs() {
    local t0=$SECONDS change args=()
    for change in 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                  'ENV LANG=C.UTF-8' 'WORKDIR /' "$@"; do
        args+=(--change "$change")
    done
    tar -C "$ROOTFS" -c . | docker import "${args[@]}" - "$IMAGE" >/dev/null
    log "imported $IMAGE in $((SECONDS - t0))s ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f GB", $1/1e9}'))"
    log "done in $((SECONDS - START))s"
}
