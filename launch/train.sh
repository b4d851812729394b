#!/usr/bin/env bash
# Train on this machine with one process per GPU (torchrun, NCCL), or on the CPU (gloo).
#
#   launch/train.sh CFG [key=value ...]          e.g. launch/train.sh configs/scannet200_nc.yaml data.root=data/scannet200
#
# NPROC      processes (default: the number of visible GPUs; 1 without a GPU)
# PYTHON     interpreter (default: python)
# train.batch_size is the total over all processes: each takes batch_size / NPROC scenes.
# An out_dir holding a last.pth of the same config is continued, so rerunning resumes.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: launch/train.sh CFG [key=value ...]" >&2
    exit 2
fi
cfg=$1
shift
# shellcheck source=_local.sh
source "$(dirname "${BASH_SOURCE[0]}")/_local.sh"
exec "$PY" -m torch.distributed.run --standalone --nnodes 1 --nproc-per-node "$NPROC_EFFECTIVE" \
    -m pcseg.train --cfg "$cfg" "${DEVICE_ARGS[@]}" "$@"
