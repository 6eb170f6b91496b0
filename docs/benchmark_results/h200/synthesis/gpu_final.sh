#!/bin/bash
# Final-code GPU check: CUDA tests and the batch-2 same-process A/B.
START=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore OMP_NUM_THREADS=4
exec > >(tee -a $OUT/run.log) 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devcarry/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.devcarry/py:$PWD
echo "== setup $(( $(date +%s) - START )) s"
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -2
echo "== tests $(( $(date +%s) - START )) s"
timeout 60 python3 tools/analysis/profile_backbone.py configs/repl_resnet50_imagenet.py --kinds fused light --per-tensor --shape 512 512 --batch-size 2 --steps 20 --rounds 5 --top 0 --device cuda 2>&1 | grep -v "INFO\|Warn\|warn"
echo "== all $(( $(date +%s) - START )) s"
