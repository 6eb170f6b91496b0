#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG NUM_PROCESSES [tools/train.py options]
# (NUM_PROCESSES GPUs with NCCL, or CPU processes with gloo where there is no CUDA).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_PROCESSES [tools/train.py options]" >&2
    exit 2
fi
DIR=$(cd "$(dirname "$0")" && pwd)
CONFIG=$1
NPROC=$2
shift 2
exec "$DIR/dist_launch.sh" "$NPROC" "$DIR/train.py" "$CONFIG" "$@"
