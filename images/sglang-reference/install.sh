#!/usr/bin/env bash
# Install the real SGLang server (sglang 0.5.23) for CPU into a virtualenv, as the SGLang reference
# rows run it (engine-facts: "Running the SGLang server on a CPU machine"):
#
#   1. torch 2.13.0 (the CPU build the machine's pip finds in its local wheel cache), then
#      `--no-deps sglang==0.5.23 torchvision==0.28.0` (their wheels pin a CUDA torch 2.14.1), then
#      the pinned runtime subset (requirements.txt);
#   2. torchvision 0.28.0 from the index is a CUDA build whose _meta_registrations.py registers fake
#      kernels for torchvision::nms/qnms unguarded, which crashes its import on CPU torch (and with it
#      transformers' image utilities, which SGLang imports): those two decorators are guarded on
#      torchvision.extension._has_ops(), as the file's other registrations already are;
#   3. the pure-torch CPU sgl_kernel shim (sgl_kernel/ here) into site-packages: the index has no CPU
#      build of sgl_kernel and SGLANG_USE_CPU_ENGINE=1 imports it at module level;
#   4. the stand-in's SGLang plugin entry point (a dist-info declaring group sglang.srt.plugins ->
#      glmverify.standin.sglang_plugin:register; the code comes from glmverify on PYTHONPATH, and it
#      does nothing unless GLM_STANDIN_SGLANG=1);
#   5. an import check, then the marker `.glmverify-ready` (glmverify.parsers.envs reuses the venv for
#      the offline parser conformance run).
#
#   images/sglang-reference/install.sh VENV            # idempotent: exits when VENV is ready
#   PIP_OFFLINE=DIR images/sglang-reference/install.sh VENV   # install from wheels in DIR only
#
# About 5-8 minutes and 2.8 GB on the 2-core machine (torch from the local cache).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:?usage: install.sh VENV}"
PYTHON="${PYTHON:-python3}"
SGLANG_VERSION=0.5.23
log() { printf '[sglang-reference install %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -f "$VENV/.glmverify-ready" && -f "$VENV/.glmverify-server" ]]; then
    log "$VENV is ready"
    exit 0
fi
t0=$SECONDS
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)
if [[ -n "${PIP_OFFLINE:-}" ]]; then PIP+=(--no-index --find-links "$PIP_OFFLINE"); fi
# pip's warnings about local index directories without the package are noise here
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

log "torch 2.13.0 (CPU), sglang $SGLANG_VERSION and torchvision 0.28.0 (--no-deps)"
quiet "${PIP[@]}" torch==2.13.0
quiet "${PIP[@]}" --no-deps "sglang==$SGLANG_VERSION" torchvision==0.28.0
log "runtime requirements (pinned)"
quiet "${PIP[@]}" torch==2.13.0 -r "$HERE/requirements.txt"

SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
META="$SITE/torchvision/_meta_registrations.py"
if grep -q '^@torch.library.register_fake("torchvision::' "$META"; then
    log "guarding torchvision's unguarded fake-kernel registrations"
    sed -i 's/^@torch.library.register_fake("\(torchvision::[a-z_]*\)")/@(torch.library.register_fake("\1") if torchvision.extension._has_ops() else (lambda fn: fn))/' "$META"
fi
rm -rf "$SITE/sgl_kernel"
cp -r "$HERE/sgl_kernel" "$SITE/sgl_kernel"
DIST="$SITE/glmverify_standin_sglang_plugin-0.1.dist-info"
mkdir -p "$DIST"
printf 'Metadata-Version: 2.1\nName: glmverify-standin-sglang-plugin\nVersion: 0.1\nSummary: entry point of the glmverify GLM-5.2 stand-in for SGLang (code: glmverify.standin.sglang_plugin)\n' > "$DIST/METADATA"
printf '[sglang.srt.plugins]\nglm_standin = glmverify.standin.sglang_plugin:register\n' > "$DIST/entry_points.txt"
printf 'glmverify_standin_sglang_plugin-0.1.dist-info/METADATA,,\nglmverify_standin_sglang_plugin-0.1.dist-info/entry_points.txt,,\nglmverify_standin_sglang_plugin-0.1.dist-info/RECORD,,\n' > "$DIST/RECORD"

log "import check"
SGLANG_USE_CPU_ENGINE=1 "$PY" -c 'import sglang, torchvision, sglang.srt.entrypoints.http_server, sgl_kernel; print("sglang", sglang.__version__)' >&2
touch "$VENV/.glmverify-ready" "$VENV/.glmverify-server"
log "done in $((SECONDS - t0))s ($(du -sh "$VENV" | cut -f1))"
