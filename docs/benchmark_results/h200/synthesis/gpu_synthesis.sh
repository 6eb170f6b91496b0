#!/bin/bash
# GPU check of the batched synthesis: CUDA tests, same-process A/B, benchmark.py cost table.
START=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore OMP_NUM_THREADS=4 MPLBACKEND=Agg
exec > >(tee -a $OUT/run.log) 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devcarry/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.devcarry/py:$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv; echo nproc $(nproc)
python3 -c "import torch, mmpretrain, repl_mm; print(torch.__version__, mmpretrain.__version__, repl_mm.REGISTERED, torch.cuda.get_device_name(0))" || exit 1
echo "== setup $(( $(date +%s) - START )) s"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py > $OUT/cuda_tests.log 2>&1; echo "cuda tests exit $?"; tail -3 $OUT/cuda_tests.log
echo "== tests $(( $(date +%s) - START )) s"
for B in 2 16; do timeout 100 python3 tools/analysis/profile_backbone.py configs/repl_resnet50_imagenet.py --kinds fused light --per-tensor --shape 512 512 --batch-size $B --steps 20 --rounds 5 --top 0 --device cuda 2>&1 | grep -v "INFO\|Warn\|warn" > $OUT/profile_r50_b$B.log; echo "profile b$B exit $?"; cat $OUT/profile_r50_b$B.log; done
echo "== profile $(( $(date +%s) - START )) s"
timeout 190 python3 tools/benchmark.py configs/repl_resnet50_imagenet.py --backbone-only --shape 512 512 --batch-size 2 --repeats 3 --iters 20 --warmup 5 --device cuda --variants baseline repl-fused repl-light removed --out /tmp/bench > $OUT/bench_r50.log 2>&1; echo "bench exit $?"
cp /tmp/bench/benchmark.json /tmp/bench/benchmark.md /tmp/bench/benchmark.png $OUT/ 2>/dev/null; cat /tmp/bench/benchmark.md
echo "== all $(( $(date +%s) - START )) s"
