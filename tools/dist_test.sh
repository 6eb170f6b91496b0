#!/usr/bin/env bash
# Distributed testing: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [tools/test.py options]
# (NUM_PROCESSES GPUs with NCCL, or CPU processes with gloo where there is no CUDA).
set -euo pipefail
[ $# -ge 3 ] || {
    echo "usage: $0 CONFIG CHECKPOINT NUM_PROCESSES [tools/test.py options]" >&2
    exit 2
}
DIR=$(cd "$(dirname "$0")" && pwd)
exec "$DIR/dist_launch.sh" "$3" "$DIR/test.py" "$1" "$2" "${@:4}"
