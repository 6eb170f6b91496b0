#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md (section 1, "The normaliser-free light surrogate and
# the flat-buffer synthesis", and section 6, "On CUDA"), in one run.
#
#   bash benchmarks/gpu_benchmarks.sh OUT_DIR [ledger|tests|backbone|models|all]
#
# On a CUDA machine with repl-mm's stack. Every output goes to OUT_DIR (one log per command,
# benchmark.py's JSON and tables under OUT_DIR/<name>/). Sections, in the order of importance:
#   ledger    (at most 3 minutes) the memory ledger of a ResNet-50 backbone step at
#             32x3x224x224 against torch.cuda.max_memory_allocated, for plain, every RepL kind
#             and the checkpointing and AMP peers (tools/analysis/cost_report.py --ledger, one
#             process per variant: ledger.json / .md / .png), then the ledger's CUDA test
#             (within 5%, hand counts)
#   tests     the tests marked cuda (pytest -m cuda): the flat synthesis against the per-tensor
#             reference (loss bit for bit), the light surrogate under fp16/bf16 autocast on
#             channels-last
#   backbone  ResNet-50 backbone at 16x3x512x512 (the targets' setting): same-process A/B of
#             plain/fused/light/removed in fp32, fp16 autocast and bf16 channels-last, for both
#             light conv surrogates (repl.light_norm batch and weight); batch 2
#             with per-block and per-tensor synthesis (launch-bound); separate processes with the
#             optimizer step, fp32 and --amp, against checkpointing and AMP
#   models    Mask R-CNN and UPerNet RepL-R50, whole train steps at their configs' per-GPU batch,
#             fp32 and --amp, against frozen stages and checkpointing (Mask R-CNN's RoIAlign
#             needs mmcv built with its CUDA ops)
set -u
OUT=${1:?usage: gpu_benchmarks.sh OUT_DIR [ledger|tests|backbone|models|all]}
SECTION=${2:-all}
PY=${PYTHON:-python}
R50=configs/repl_resnet50_imagenet.py
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

run() {  # run NAME COMMAND...: the command's output to OUT/NAME.log and the terminal
    local name=$1
    shift
    echo "== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$OUT/$name.log"
    echo "== $name: exit ${PIPESTATUS[0]} in $((SECONDS - start)) s"
}

wanted() { [ "$SECTION" = all ] || [ "$SECTION" = "$1" ]; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1

if wanted ledger; then
    run ledger_r50_backbone "$PY" tools/analysis/cost_report.py "$R50" --ledger --backbone-only \
        --device cuda --shape 224 224 --batch-size 32 --out "$OUT/ledger_r50_backbone" \
        --variants plain fused light-batch light-weight removed plain+cp plain+amp
    run ledger_cuda_test "$PY" -m pytest -q -m cuda tests/engine/test_ledger.py
fi

if wanted tests; then
    run cuda_tests "$PY" -m pytest -q -m cuda tests
fi

if wanted backbone; then
    AB=(benchmarks/profile_backbone.py "$R50" --kinds fused light removed --shape 512 512
        --device cuda --top 0)
    for norm in batch weight; do  # the two light conv surrogates (repl.light_norm)
        LN=(--cfg-options model.backbone.repl.light_norm=$norm)
        run ab_b16_fp32_$norm "$PY" "${AB[@]}" --batch-size 16 --steps 10 --rounds 4 "${LN[@]}"
        run ab_b16_fp16_$norm "$PY" "${AB[@]}" --batch-size 16 --steps 10 --rounds 4 \
            --amp fp16 "${LN[@]}"
        run ab_b16_bf16_channels_last_$norm "$PY" "${AB[@]}" --batch-size 16 --steps 10 \
            --rounds 4 --amp bf16 --channels-last "${LN[@]}"
        run profile_b16_light_$norm "$PY" benchmarks/profile_backbone.py "$R50" --kinds light \
            removed --shape 512 512 --device cuda --batch-size 16 --steps 5 --rounds 1 --top 15 \
            "${LN[@]}"
    done
    run ab_b2_fp32 "$PY" "${AB[@]}" --batch-size 2 --steps 20 --rounds 5 --per-block --per-tensor
    BENCH=(benchmarks/benchmark.py "$R50" --backbone-only --shape 512 512 --batch-size 16
           --repeats 2 --iters 10 --warmup 3 --device cuda)
    run bench_b16_fp32 "$PY" "${BENCH[@]}" --out "$OUT/bench_b16_fp32" \
        --variants baseline repl-fused repl-light removed checkpointing amp
    run bench_b16_amp "$PY" "${BENCH[@]}" --out "$OUT/bench_b16_amp" --amp \
        --variants baseline repl-fused repl-light removed checkpointing
    WEIGHT=(--variants baseline repl-light --cfg-options model.backbone.repl.light_norm=weight)
    run bench_b16_fp32_weight "$PY" "${BENCH[@]}" --out "$OUT/bench_b16_fp32_weight" "${WEIGHT[@]}"
    run bench_b16_amp_weight "$PY" "${BENCH[@]}" --out "$OUT/bench_b16_amp_weight" --amp \
        "${WEIGHT[@]}"
fi

if wanted models; then
    for config in configs/mask_rcnn_repl_r50_coco.py \
                  configs/upernet_repl_r50_cityscapes-512x1024.py; do
        name=$(basename "$config" .py)
        MODEL=(benchmarks/benchmark.py "$config" --repeats 2 --iters 10 --warmup 3 --device cuda
               --variants baseline repl-fused repl-light removed frozen-stages checkpointing)
        run "${name}_fp32" "$PY" "${MODEL[@]}" --out "$OUT/${name}_fp32"
        run "${name}_amp" "$PY" "${MODEL[@]}" --out "$OUT/${name}_amp" --amp
        run "${name}_amp_weight" "$PY" benchmarks/benchmark.py "$config" --repeats 2 --iters 10 \
            --warmup 3 --device cuda --amp --out "$OUT/${name}_amp_weight" \
            --variants baseline repl-light --cfg-options model.backbone.repl.light_norm=weight
    done
fi
