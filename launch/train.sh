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
PY=${PYTHON:-python}
gpus=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
nproc=${NPROC:-$(( gpus > 0 ? gpus : 1 ))}
extra=()
if [ "$gpus" -eq 0 ]; then
    extra=(train.device=cpu)  # gloo on CPU
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi
exec "$PY" -m torch.distributed.run --standalone --nnodes 1 --nproc-per-node "$nproc" \
    -m pcseg.train --cfg "$cfg" "${extra[@]}" "$@"
