#!/usr/bin/env bash
# Shared by dist_train.sh / dist_test.sh: tools/dist_launch.sh NUM_PROCESSES SCRIPT [args...]
# runs SCRIPT with --launcher pytorch under torch.distributed.run: one process per GPU on CUDA
# (NCCL), NUM_PROCESSES CPU processes (gloo) on a machine without CUDA.
set -euo pipefail
NPROC=$1
SCRIPT=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
if [ -z "${OMP_NUM_THREADS:-}" ]; then
    # share the CPU cores between the processes instead of oversubscribing them
    export OMP_NUM_THREADS=$(( $(nproc) / NPROC > 0 ? $(nproc) / NPROC : 1 ))
fi
exec "$PYTHON" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$SCRIPT" "$@" --launcher pytorch
