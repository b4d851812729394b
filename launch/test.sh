#!/usr/bin/env bash
# Evaluate a checkpoint (and optionally write a submission) with one process per GPU, or on the CPU.
#
#   launch/test.sh CKPT [pcseg.test arguments]   e.g. launch/test.sh runs/x/best.pth --split val --tta rot4
#
# NPROC and PYTHON as in launch/train.sh. Scenes are split across the processes and the
# confusion matrices summed, so the metrics equal a single-process run.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: launch/test.sh CKPT [pcseg.test arguments]" >&2
    exit 2
fi
ckpt=$1
shift
# shellcheck source=_local.sh
source "$(dirname "${BASH_SOURCE[0]}")/_local.sh"
exec "$PY" -m torch.distributed.run --standalone --nnodes 1 --nproc-per-node "$NPROC_EFFECTIVE" \
    -m pcseg.test --ckpt "$ckpt" "$@" "${DEVICE_ARGS[@]}"
