# Shared by launch/train.sh and launch/test.sh (sourced): how many processes, and the CPU fallback.
# Sets PY, NPROC_EFFECTIVE and DEVICE_ARGS.
PY=${PYTHON:-python}
gpus=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
NPROC_EFFECTIVE=${NPROC:-$(( gpus > 0 ? gpus : 1 ))}
DEVICE_ARGS=()
if [ "$gpus" -eq 0 ]; then
    DEVICE_ARGS=(train.device=cpu)  # gloo on the CPU
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi
