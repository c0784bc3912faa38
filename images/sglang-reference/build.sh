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
# Needs root (chroot, mount), debootstrap and a running Docker daemon. The steps shared with
# images/reference are images/lib.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE_RECIPE=sglang-reference
SGLANG_VERSION=0.5.23
IMAGE="${IMAGE:-glmverify/reference-sglang-cpu:$SGLANG_VERSION}"
# shellcheck source=../lib.sh
source "$HERE/../lib.sh"
WHEELS="$WORK/wheels-sglang-$SGLANG_VERSION"

begin_build
# 1. base rootfs ---------------------------------------------------------------------------------
unpack_base_rootfs

# 2. wheels, downloaded on the host ---------------------------------------------------------------
if ! wheels_cached; then
    log "pip download torch 2.13.0 + requirements.txt, sglang $SGLANG_VERSION and torchvision (host $PYTHON)"
    host_pip_download torch==2.13.0 -r "$HERE/requirements.txt"
    host_pip_download --no-deps "sglang==$SGLANG_VERSION" torchvision==0.28.0
    wheels_done
fi

# 3. offline install in the chroot ----------------------------------------------------------------
t0=$SECONDS
mount_for_install
mkdir -p "$ROOTFS/opt/sglang-reference"
cp -r "$HERE/install.sh" "$HERE/requirements.txt" "$HERE/sgl_kernel" "$ROOTFS/opt/sglang-reference/"
log "install.sh /opt/venv in the chroot (offline, from the host's wheels)"
in_root env PIP_OFFLINE=/wheels PIP_NO_CACHE_DIR=1 bash /opt/sglang-reference/install.sh /opt/venv
log "installed in $((SECONDS - t0))s"
end_install

# 4. docker import -------------------------------------------------------------------------------
import_rootfs \
    'ENV SGLANG_USE_CPU_ENGINE=1' \
    'EXPOSE 30000' \
    "LABEL org.opencontainers.image.title=glmverify-reference-sglang-cpu org.opencontainers.image.version=$SGLANG_VERSION" \
    'CMD ["python3", "-m", "sglang.launch_server", "--help"]'
