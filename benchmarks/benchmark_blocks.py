"""Micro-benchmark: training-step time of original, fused and light blocks.

    python benchmarks/benchmark_blocks.py [--repeats 5] [--only resnet50 vit-b swin-t]

* ResNet-50 (mmdet), each stage at the activations of a 2x3x512x512 batch: forward + backward of
  the stage with its original blocks, with the default plan fused, and with it light (both conv
  surrogates: ``repl.light_norm`` ``'batch'`` and ``'weight'``); and the
  synthesis overhead: forward + backward of all synthesised tensors of the fused backbone, as a
  fraction of the fused backbone's step.
* ViT-B (mmpretrain): one encoder layer on 2x197x768 tokens: original, fused (synthesised from its
  two neighbours), light.
* Swin-T (mmdet): stage 2 (6 blocks, 384 channels) at the tokens of a 2x3x512x512 batch.

Prints markdown tables; numbers depend on the machine (say which when you quote them).
"""
import argparse

import torch
from mmengine.registry import MODELS, init_default_scope
from torch import nn

import repl_mm  # noqa: F401
from repl_mm.analysis.step_timing import forward_backward, time_step
from repl_core import block_syntheses


def build(scope: str, cfg: dict) -> nn.Module:
    init_default_scope(scope)
    return MODELS.build(cfg)


def row(name, plain, *others):
    """``| name | plain s | other s (ratio) | ... |``."""
    return (f'| {name} | {plain["median"]:.3f} | '
            + ' | '.join(f'{t["median"]:.3f} ({t["median"] / plain["median"]:.2f}x)'
                         for t in others) + ' |')


def header(what, columns=('fused', 'light')):
    print(f'| {what} | original s | ' + ' | '.join(f'{c} s' for c in columns) + ' |')
    print('|---|---:|' + '---:|' * len(columns))


def synthesis_step(model: nn.Module):
    """Forward + backward of every synthesised tensor, block by block as a forward makes them."""
    groups = block_syntheses(model)

    def step():
        model.zero_grad(set_to_none=True)
        values = []
        for group in groups:
            group.synthesise(model, ())
            values += group.values
            group.leave(model, (), None)
        sum(v.square().sum() for v in values).backward()

    return step


def resnet50(repeats: int) -> None:
    variants = {kind: build('mmdet', dict(type='RepLResNet', depth=50, repl=repl))
                for kind, repl in (('plain', dict(blocks={})), ('fused', dict()),
                                   ('light', dict(kind='light')),
                                   ('light_norm=weight', dict(kind='light', light_norm='weight')))}
    x = torch.randn(2, 3, 512, 512)
    with torch.no_grad():  # the stages' inputs for this batch
        plain = variants['plain']
        h = plain.maxpool(plain.relu(plain.norm1(plain.conv1(x))))
        inputs = {}
        for name in plain.res_layers:
            inputs[name] = h
            h = getattr(plain, name)(h)
    print('ResNet-50 stages, forward + backward at the activations of a 2x3x512x512 batch')
    kinds = [kind for kind in variants if kind != 'plain']
    header('stage (replaced blocks)', kinds)
    for name in plain.res_layers:
        times = {kind: time_step(forward_backward(getattr(m, name),
                                                  inputs[name].clone().requires_grad_()),
                                 repeats) for kind, m in variants.items()}
        replaced = [i for stage, i in variants['fused'].repl_plan.replaced if stage == name]
        print(row(f'{name} {replaced}', times['plain'], *(times[k] for k in kinds)))
    times = {kind: time_step(forward_backward(m, x), repeats) for kind, m in variants.items()}
    print(row('whole backbone', times['plain'], *(times[k] for k in kinds)))
    synthesis = time_step(synthesis_step(variants['fused']), repeats)
    print(f'\nSynthesis of all replaced tensors, forward + backward: '
          f'{synthesis["median"]:.4f} s = {synthesis["median"] / times["fused"]["median"]:.2%} '
          f'of the fused backbone step.\n')


def vit_b(repeats: int) -> None:
    arch = dict(type='RepLVisionTransformer', arch='b', img_size=224, patch_size=16)
    variants = {kind: build('mmpretrain', dict(arch, repl=repl))
                for kind, repl in (('plain', dict(blocks={})), ('fused', dict()),
                                   ('light', dict(kind='light')))}
    tokens = torch.randn(2, 197, 768, requires_grad=True)
    print('ViT-B encoder layer 1 (replaced in fused / light), forward + backward on 2x197x768')
    header('layer')
    times = {kind: time_step(forward_backward(m.layers[1], tokens), repeats)
             for kind, m in variants.items()}
    print(row('layers[1]', times['plain'], times['fused'], times['light']))
    print()


def swin_t(repeats: int) -> None:
    arch = dict(type='RepLSwinTransformer', embed_dims=96, depths=(2, 2, 6, 2),
                num_heads=(3, 6, 12, 24), window_size=7)
    variants = {kind: build('mmdet', dict(arch, repl=repl))
                for kind, repl in (('plain', dict(blocks={})), ('fused', dict()),
                                   ('light', dict(kind='light')))}
    hw = (32, 32)  # stage 2 tokens of a 512x512 image (stride 16)
    tokens = torch.randn(2, hw[0] * hw[1], 384, requires_grad=True)

    def stage_step(model):
        blocks = model.stages[2].blocks

        def run(x):
            for block in blocks:
                x = block(x, hw)
            return x

        holder = nn.Module()
        holder.forward = run
        holder.blocks = blocks
        return forward_backward(holder, tokens)

    print('Swin-T stage 2 (6 blocks; fused / light replace blocks 1 and 3), forward + backward '
          'at the tokens of a 2x3x512x512 batch')
    header('stage')
    times = {kind: time_step(stage_step(m), repeats) for kind, m in variants.items()}
    print(row('stages.2', times['plain'], times['fused'], times['light']))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--only', nargs='+', default=['resnet50', 'vit-b', 'swin-t'],
                        choices=['resnet50', 'vit-b', 'swin-t'])
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{"CUDA" if torch.cuda.is_available() else "CPU"}\n')
    for name, bench in (('resnet50', resnet50), ('vit-b', vit_b), ('swin-t', swin_t)):
        if name in args.only:
            bench(args.repeats)


if __name__ == '__main__':
    main()
