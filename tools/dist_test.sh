#!/usr/bin/env bash
# Distributed testing: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [tools/test.py options]
# (NUM_PROCESSES GPUs with NCCL, or CPU processes with gloo where there is no CUDA).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NUM_PROCESSES [tools/test.py options]" >&2
    exit 2
fi
DIR=$(cd "$(dirname "$0")" && pwd)
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
exec "$DIR/dist_launch.sh" "$NPROC" "$DIR/test.py" "$CONFIG" "$CHECKPOINT" "$@"
