#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG NUM_PROCESSES [tools/train.py options]
# (NUM_PROCESSES GPUs with NCCL, or CPU processes with gloo where there is no CUDA).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 CONFIG NUM_PROCESSES [tools/train.py options]" >&2; exit 2; }
DIR=$(cd "$(dirname "$0")" && pwd)
exec "$DIR/dist_launch.sh" "$2" "$DIR/train.py" "$1" "${@:3}"
