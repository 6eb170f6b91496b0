"""RepL from a pretrained backbone: the transfer protocol on Fashion-MNIST.

    python benchmarks/benchmark_transfer.py pretrain --arch resnet20
    python benchmarks/benchmark_transfer.py run --arch resnet20 --split val --seeds 0 1 2 3 4
    python benchmarks/benchmark_transfer.py run --arch resnet20 --split test --seeds 0 1 2 3 4
    python benchmarks/benchmark_transfer.py report --arch resnet20 --split test

A plain network is pretrained once on Fashion-MNIST classes 0-4 (all their training images),
then converted (``repl_core.warm_start``) and fine-tuned on classes 5-9 from a few images
(``--shots`` per class, drawn per seed), and evaluated on the test images of classes 5-9.
Settings are chosen on ``--split val``: other training images of classes 5-9, disjoint from the
fine-tuning ones; ``--split test`` is the final run. Each (variant, seed, split, settings) writes
one JSON file under ``--out``; ``report`` pairs the variants by seed and prints mean, standard
deviation and the t-based 95% interval of each difference.

The models are mmpretrain's (``CIFARResNet`` / ``VisionTransformer`` backbones with a linear
head); training is a plain loop (SGD or AdamW, cosine schedule, random crop and flip) so that a
run takes seconds: the same for every variant, RepL's optimizer hooks included.
"""
import argparse
import contextlib
import copy
import json
import math
import os
import os.path as osp
import resource
import statistics
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS, init_default_scope

import repl_mm  # noqa: F401  (registers the RepL classes)
from repl_core import COEFFICIENTS, LIGHT_NORMS, fold_replaced_blocks, replaced_blocks
from repl_core.warm_start import convert_from_plain
from repl_mm.analysis.worker import code_commit
from repl_mm.demo.fashion_mnist_source import DEFAULT_FMNIST_DIR, read_split
from repl_mm.engine import trusted_checkpoint_globals
from repl_mm.engine.cli import run_tool
from repl_mm.engine.convert_checkpoint import choose_auto_plan
from repl_mm.models import repl_settings_of

MEAN, STD = 72.94, 90.02
PRETRAIN_CLASSES, TRANSFER_CLASSES = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
ARCHS = {
    'resnet20': dict(backbone=dict(type='CIFARResNet', depth=20, in_channels=1,
                                   zero_init_residual=False),
                     neck=dict(type='GlobalAveragePooling'), channels=64,
                     optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4),
                     pretrain_iters=1000, batch=128),
    'vit': dict(backbone=dict(type='VisionTransformer', in_channels=1, img_size=28, patch_size=4,
                              arch=dict(embed_dims=96, num_layers=6, num_heads=3,
                                        feedforward_channels=384)),
                neck=None, channels=96,
                optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                pretrain_iters=1000, batch=128),
}
#: variant -> (repl options or None for the plain backbone, extra backbone options); '-ch':
#: coefficients per output channel
CHANNEL = dict(granularity='channel')
VARIANTS = {
    'plain': (None, {}),
    'frozen': (None, dict(frozen_stages=1)),
    # the plain network with the default plan's blocks frozen (their pretrained weights, no
    # gradients; norm statistics update in training mode as every variant's): the peer with
    # RepL's trainable count that keeps the pretrained function
    'frozen-blocks': (None, {}),
    'removed': (dict(kind='removed'), {}),
    'fused-weights': (dict(warm_start='weights'), {}),
    'fused-identity': (dict(warm_start='identity'), {}),
    'fused-activations': (dict(warm_start='activations'), {}),
    'fused-activations-ch': (dict(warm_start='activations', **CHANNEL), {}),
    'light-identity': (dict(kind='light', warm_start='identity'), {}),
    'light-activations-ch': (dict(kind='light', warm_start='activations', **CHANNEL), {}),
    # the light kind with the family's default start and granularity
    'light-default': (dict(kind='light'), {}),
    # the light-activations-ch surrogate with its own trainable weights instead of synthesised
    'light-own': (dict(kind='light', warm_start='activations', **CHANNEL), {}),
    'auto-activations-ch': (dict(blocks='auto', budget=0.25, warm_start='activations',
                                 **CHANNEL), {}),
    # the ranked plan's blocks started as their shortcut: what the ranking alone keeps
    'auto-identity': (dict(blocks='auto', budget=0.25, warm_start='identity'), {}),
    # the family's default start (ResNets: activations; transformers: identity)
    'fused-default': (dict(), {}),
    # the search (benchmarks/results/cpu/transfer/preregistration.md, stage 4): distillation
    # of the replaced blocks' outputs for the first DISTILL_STEPS steps; plain fine-tuning for
    # the first PROGRESSIVE_STEPS, then the default plan replaced (fitted to the network then)
    'fused-distill': (dict(), {}),
    'fused-activations-ch-distill': (dict(warm_start='activations', **CHANNEL), {}),
    'progressive': (None, {}),
}
DISTILL_STEPS = PROGRESSIVE_STEPS = 60


def load_images(classes: Tuple[int, ...], split: str) -> Tuple[np.ndarray, np.ndarray]:
    images, labels = read_split(DEFAULT_FMNIST_DIR, split)
    keep = np.isin(labels, classes)
    remap = {c: i for i, c in enumerate(classes)}
    return images[keep], np.array([remap[int(c)] for c in labels[keep]], dtype=np.int64)


Split = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def transfer_split(seed: int, shots: int, split: str) -> Split:
    """``(train images, labels, eval images, labels)`` of classes 5-9: ``shots`` training images
    per class drawn with ``seed``; eval: ``shots`` other training images per class (``'val'``)
    or the test images (``'test'``)."""
    images, labels = load_images(TRANSFER_CLASSES, 'train')
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in range(len(TRANSFER_CLASSES)):
        order = rng.permutation(np.flatnonzero(labels == label))
        train += list(order[:shots])
        val += list(order[shots:2 * shots])
    if split == 'val':
        return images[train], labels[train], images[val], labels[val]
    test_images, test_labels = load_images(TRANSFER_CLASSES, 'val')
    return images[train], labels[train], test_images, test_labels


def tensor(images: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(images).float().unsqueeze(1) - MEAN) / STD


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with 2-pixel padding and horizontal flip, per image."""
    padded = F.pad(x, (2, 2, 2, 2))
    out = torch.empty_like(x)
    offsets = torch.randint(0, 5, (len(x), 2), generator=generator)
    flips = torch.rand(len(x), generator=generator) < 0.5
    for i, ((dy, dx), flip) in enumerate(zip(offsets.tolist(), flips.tolist())):
        crop = padded[i, :, dy:dy + 28, dx:dx + 28]
        out[i] = crop.flip(-1) if flip else crop
    return out


def build_classifier(arch: str, num_classes: int, repl: Optional[dict] = None,
                     backbone_extra: Optional[dict] = None) -> torch.nn.Module:
    spec = ARCHS[arch]
    backbone = dict(spec['backbone'], **(backbone_extra or {}))
    if repl is not None:
        backbone = dict(backbone, type='RepL' + backbone['type'], repl=repl)
    head = dict(type='LinearClsHead', num_classes=num_classes, in_channels=spec['channels'])
    init_default_scope('mmpretrain')
    return MODELS.build(dict(type='ImageClassifier', backbone=backbone, neck=spec['neck'],
                             head=head))


def logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    feats = model.extract_feat(x)
    return model.head(feats)


def evaluate(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), 500):
            x = tensor(images[start:start + 500])
            correct += (logits(model, x).argmax(1).numpy() == labels[start:start + 500]).sum()
    return float(100.0 * correct / len(images))


def build_optimizer(model: torch.nn.Module, optimizer_cfg: dict) -> torch.optim.Optimizer:
    """``optimizer_cfg`` (``type`` a ``torch.optim`` class) over the trainable parameters."""
    cfg = dict(optimizer_cfg)
    kind = getattr(torch.optim, cfg.pop('type'))
    return kind([p for p in model.parameters() if p.requires_grad], **cfg)


def new_head(model: torch.nn.Module, arch: str, seed: int) -> None:
    """Give ``model`` a new head for the transfer classes, the same for every variant of a
    seed."""
    torch.manual_seed(seed)
    model.head = build_classifier(arch, len(TRANSFER_CLASSES)).head


def train(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, iters: int,
          optimizer_cfg: dict, seed: int, batch: int, steps: Optional[range] = None,
          generator: Optional[torch.Generator] = None,
          distill: Optional['Distillation'] = None) -> Dict[str, float]:
    """``steps`` (default: all ``iters``) steps of the cross-entropy on random batches; cosine
    learning rate over ``iters``. The RepL coefficients are stepped as in any training
    (``repl_core.coefficient_steps``). ``distill`` adds its loss while it is on."""
    generator = generator or torch.Generator().manual_seed(seed)
    optimizer = build_optimizer(model, optimizer_cfg)
    for group in optimizer.param_groups:
        group['initial_lr'] = group['lr']
    x_all, y_all = tensor(images), torch.from_numpy(labels)
    model.train()
    start = time.perf_counter()
    steps = range(iters) if steps is None else steps
    for step in steps:
        for group in optimizer.param_groups:
            group['lr'] = group['initial_lr'] * 0.5 * (1 + math.cos(math.pi * step / iters))
        index = torch.randint(0, len(images), (batch, ), generator=generator)
        with distill.watching(step) if distill else contextlib.nullcontext():
            loss = F.cross_entropy(logits(model, augment(x_all[index], generator)),
                                   y_all[index])
            if distill:
                loss = loss + distill.loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    return dict(s_per_iter=seconds / max(len(steps), 1), final_loss=loss.item())


class Distillation:
    """Pulls each replaced block's output towards the pretrained block's output on the same input
    (mean squared error relative to the target's mean square, summed over the blocks) for the
    first ``until`` steps: the search candidates ``*-distill``."""

    def __init__(self, model: torch.nn.Module, plain: torch.nn.Module, until: int) -> None:
        self.until = until
        self.pairs = [(block, copy.deepcopy(plain.backbone.get_submodule(path)).eval())
                      for path, block in replaced_blocks(model.backbone)]
        for _, teacher in self.pairs:
            teacher.requires_grad_(False)
        self.terms: List[torch.Tensor] = []

    @contextlib.contextmanager
    def watching(self, step: int):
        self.terms = []
        if step >= self.until:
            yield
            return
        handles = [block.register_forward_hook(self._compare(teacher))
                   for block, teacher in self.pairs]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _compare(self, teacher: torch.nn.Module):
        def hook(module, args, output):
            with torch.no_grad():
                target = teacher(*args)
            self.terms.append((output - target).square().mean()
                              / target.square().mean().clamp_min(1e-12))
        return hook

    def loss(self) -> torch.Tensor:
        return sum(self.terms) if self.terms else torch.zeros(())


def pretrained_path(out: str, arch: str) -> str:
    return osp.join(out, arch, 'pretrained.pth')


def pretrain(args: argparse.Namespace) -> None:
    spec = ARCHS[args.arch]
    torch.manual_seed(0)
    model = build_classifier(args.arch, len(PRETRAIN_CLASSES))
    images, labels = load_images(PRETRAIN_CLASSES, 'train')
    stats = train(model, images, labels, args.iters or spec['pretrain_iters'], spec['optimizer'],
                  seed=0, batch=spec['batch'])
    test_images, test_labels = load_images(PRETRAIN_CLASSES, 'val')
    accuracy = evaluate(model, test_images, test_labels)
    path = pretrained_path(args.out, args.arch)
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save({'state_dict': model.state_dict(), 'top1': accuracy}, path)
    print(json.dumps(dict(arch=args.arch, pretrain_top1=accuracy, **stats)))


def convert(arch: str, variant: str, plain: torch.nn.Module, images: List[torch.Tensor],
            seed: int, coefficient_lr_mult: Optional[float],
            light_norm: Optional[str] = None) -> Tuple[torch.nn.Module, Dict]:
    """The variant's model with the pretrained weights (head included: it scores the pretraining
    task right after conversion)."""
    repl, extra = VARIANTS[variant]
    init_default_scope('mmpretrain')
    settings = (None if repl is None
                else repl_settings_of(dict(build_cfg_backbone(arch), repl=repl)))
    if repl is not None and coefficient_lr_mult is not None:
        repl = dict(repl, coefficient_lr_mult=coefficient_lr_mult)
    if settings is not None and settings.kind == 'light' and light_norm is not None:
        repl = dict(repl, light_norm=light_norm)
    info: Dict = {'backbone_extra': extra}
    if settings is not None and settings.blocks == 'auto':
        repl, ranking = choose_auto_plan(dict(build_cfg_backbone(arch), repl=repl),
                                         plain.backbone, images, settings.budget, steps=150)
        info.update(plan=repl['blocks'], ranking=ranking)
    info['repl'] = repl
    torch.manual_seed(seed)
    model = build_classifier(arch, len(PRETRAIN_CLASSES), repl, extra)
    if repl is None:
        model.load_state_dict(plain.state_dict())
        if extra.get('frozen_stages'):
            model.backbone._freeze_stages()
        if variant == 'frozen-blocks':
            info['frozen_blocks'] = freeze_planned_blocks(arch, model.backbone)
    else:
        model.load_state_dict({k: v for k, v in plain.state_dict().items()
                               if not k.startswith('backbone.')}, strict=False)
        blocks = convert_from_plain(plain.backbone, model.backbone, images, steps=150,
                                    warm_start=model.backbone.repl_config.warm_start)
        info['output_errors'] = {b.path: b.output_error for b in blocks}
        if variant == 'light-own':
            fold_replaced_blocks(model.backbone)
    return model, info


def freeze_planned_blocks(arch: str, backbone: torch.nn.Module) -> List[str]:
    """Freeze the blocks the default plan would replace in ``backbone`` (a plain one); return
    their paths."""
    init_default_scope('mmpretrain')
    planned = MODELS.build(dict(build_cfg_backbone(arch), repl=dict()))
    paths = dict(planned.repl_stages())
    frozen = [f'{paths[stage]}.{index}' for stage, index in planned.repl_plan.replaced]
    for path in frozen:
        for p in backbone.get_submodule(path).parameters():
            p.requires_grad_(False)
    return frozen


def build_cfg_backbone(arch: str) -> dict:
    spec = ARCHS[arch]
    return dict(spec['backbone'], type='RepL' + spec['backbone']['type'])


def run_one(args: argparse.Namespace, variant: str, seed: int, plain: torch.nn.Module) -> Dict:
    spec = ARCHS[args.arch]
    train_images, train_labels, eval_images, eval_labels = transfer_split(
        seed, args.shots, args.split)
    # the conversion's batches: 4 x 64 of the fine-tuning images, every class in each
    order = np.random.default_rng(seed).permutation(len(train_images))[:256]
    fit_images = [tensor(train_images[order[i:i + 64]]) for i in range(0, len(order), 64)]
    model, info = convert(args.arch, variant, plain, fit_images, seed, args.coefficient_lr_mult,
                          args.light_norm)
    pre_images, pre_labels = load_images(PRETRAIN_CLASSES, 'val')
    converted_top1 = evaluate(model, pre_images, pre_labels)
    new_head(model, args.arch, seed)
    coefficients_before = {n: p.detach().clone() for n, p in model.named_parameters()
                           if COEFFICIENTS in n}
    optimizer = dict(spec['optimizer'], lr=args.lr or spec['optimizer']['lr'])
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    generator = torch.Generator().manual_seed(seed)
    steps = range(args.iters)
    if variant == 'progressive':  # plain first, then replaced (fitted to the network then)
        first = train(model, train_images, train_labels, args.iters, optimizer, seed,
                      args.batch, steps=range(PROGRESSIVE_STEPS), generator=generator)
        model, info = convert(args.arch, 'fused-activations', model, fit_images, seed,
                              args.coefficient_lr_mult)
        coefficients_before = {n: p.detach().clone() for n, p in model.named_parameters()
                               if COEFFICIENTS in n}
        steps = range(PROGRESSIVE_STEPS, args.iters)
    distill = (Distillation(model, plain, DISTILL_STEPS) if variant.endswith('-distill')
               else None)
    stats = train(model, train_images, train_labels, args.iters, optimizer, seed, args.batch,
                  steps=steps, generator=generator, distill=distill)
    if variant == 'progressive':
        stats['s_per_iter'] = (first['s_per_iter'] * PROGRESSIVE_STEPS + stats['s_per_iter']
                               * len(steps)) / args.iters
    moved = [(p - coefficients_before[n]).abs().max().item()
             for n, p in model.named_parameters() if n in coefficients_before]
    config = getattr(model.backbone, 'repl_config', None)
    return dict(
        arch=args.arch, variant=variant, seed=seed, split=args.split, shots=args.shots,
        iters=args.iters, lr=optimizer['lr'], light_norm=args.light_norm,
        settings=dict(  # everything that made this result
            optimizer=optimizer, batch=args.batch, schedule='cosine', augment='crop2-flip',
            backbone=dict(ARCHS[args.arch]['backbone']), conversion_batches='4x64',
            conversion_steps=150, pretrain_iters=ARCHS[args.arch]['pretrain_iters'],
            kind=config.kind if config else None,
            warm_start=config.warm_start if config else None,
            granularity=config.granularity if config else None,
            light_norm=config.light_norm if config and config.kind == 'light' else None,
            plan=model.backbone.repl_plan.to_dict() if config else None,
            distill_steps=DISTILL_STEPS if distill else 0,
            plain_steps=PROGRESSIVE_STEPS if variant == 'progressive' else 0,
            torch=torch.__version__, commit=code_commit()),
        coefficient_lr_mult=max((getattr(b, COEFFICIENTS).lr_mult for _, b in
                                 replaced_blocks(model)), default=None),
        converted_top1=converted_top1, top1=evaluate(model, eval_images, eval_labels),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        replaced=len(replaced_blocks(model)), coefficient_max_move=max(moved, default=None),
        peak_rss_mb=max(peak_before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024,
        **stats, **info)


def result_path(args: argparse.Namespace, variant: str, seed: int) -> str:
    mult = 'default' if args.coefficient_lr_mult is None else f'{args.coefficient_lr_mult:g}'
    tag = f'{args.split}_s{args.shots}_i{args.iters}_lr{args.lr or "default"}_m{mult}'
    if args.light_norm is not None:
        tag += f'_ln{args.light_norm}'
    return osp.join(args.out, args.arch, tag, f'{variant}_seed{seed}.json')


def load_pretrained(out: str, arch: str) -> Tuple[torch.nn.Module, Dict]:
    """The pretrained plain classifier (eval mode) and its checkpoint (``top1`` included)."""
    init_default_scope('mmpretrain')
    with trusted_checkpoint_globals():
        state = torch.load(pretrained_path(out, arch), map_location='cpu')
    plain = build_classifier(arch, len(PRETRAIN_CLASSES))
    plain.load_state_dict(state['state_dict'])
    return plain.eval(), state


def run(args: argparse.Namespace) -> None:
    plain, state = load_pretrained(args.out, args.arch)
    for seed in args.seeds:
        for variant in args.variants:
            path = result_path(args, variant, seed)
            if osp.isfile(path):
                continue
            result = run_one(args, variant, seed, plain)
            result['pretrained_top1'] = state['top1']
            os.makedirs(osp.dirname(path), exist_ok=True)
            with open(path, 'w') as file:
                json.dump(result, file)
            shown = ('variant', 'seed', 'converted_top1', 'top1', 's_per_iter')
            print(json.dumps({k: result[k] for k in shown}), flush=True)


def costs(args: argparse.Namespace) -> None:
    """What one fine-tuning step of each variant costs: the memory ledger at the step's peak
    (``repl_mm.engine.ledger``) and its FLOPs, batch ``--batch``, the arch's optimizer with the
    state a steady step has. ``progressive`` and the ``-distill`` candidates cost a step of their
    model after their first 60 steps (before: a plain step; the teacher's forward of the replaced
    blocks)."""
    from repl_mm.analysis.ledger_report import create_optimizer_state
    from repl_mm.engine.ledger import StepLedger
    plain, state = load_pretrained(args.out, args.arch)
    images, labels = transfer_split(0, args.shots, 'val')[:2]
    spec, rows = ARCHS[args.arch], {}
    for variant in args.variants:
        model, _ = convert(args.arch, 'fused-activations' if variant == 'progressive' else
                           variant, plain, [tensor(images[:64])], 0, None, args.light_norm)
        new_head(model, args.arch, 0)
        optimizer = build_optimizer(model, spec['optimizer'])
        create_optimizer_state(model, [optimizer])
        model.train()
        x = augment(tensor(images[:args.batch]), torch.Generator().manual_seed(0))
        with StepLedger(model, [optimizer]) as ledger:
            loss = F.cross_entropy(logits(model, x), torch.from_numpy(labels[:args.batch]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        result = ledger.result()
        ledger.close()
        rows[variant] = dict(
            trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
            peak_bytes=result.peak.total, by_category=result.peak.by_category(),
            flops=dict(forward=result.total_flops('forward'),
                       backward=result.total_flops('backward')))
    path = osp.join(args.out, args.arch, f'costs_b{args.batch}.json')
    with open(path, 'w') as file:
        json.dump(dict(arch=args.arch, batch=args.batch, optimizer=spec['optimizer'],
                       input=list(x.shape), torch=torch.__version__, commit=code_commit(),
                       variants=rows), file, indent=1)
    base = rows.get('plain')
    print('| variant | trainable | ledger peak KiB | activations KiB | FLOPs (fwd + bwd) |'
          + (' trainable vs plain | peak vs plain | FLOPs vs plain |' if base else ''))
    print('|---|---:|---:|---:|---:|' + ('---:|' * 3 if base else ''))
    for variant, row in rows.items():
        flops = row['flops']['forward'] + row['flops']['backward']
        cells = [f'{row["trainable"]:,}', f'{row["peak_bytes"] / 1024:,.0f}',
                 f'{row["by_category"]["activations"] / 1024:,.0f}', f'{flops / 1e6:,.1f}M']
        if base:
            base_flops = base['flops']['forward'] + base['flops']['backward']
            cells += [f'{row["trainable"] / base["trainable"]:.3f}',
                      f'{row["peak_bytes"] / base["peak_bytes"]:.3f}',
                      f'{flops / base_flops:.3f}']
        print(f'| {variant} | ' + ' | '.join(cells) + ' |')
    print(f'written: {path}')


def t_quantile(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom."""
    from scipy import stats
    return float(stats.t.ppf(0.975, df))


def paired_on_common_seeds(a: Dict[int, dict], b: Dict[int, dict]) -> Optional[str]:
    """``paired`` top-1 of two ``{seed: result}`` sets over the seeds both ran, or None."""
    common = sorted(set(a) & set(b))
    if not common:
        return None
    return paired([a[s]['top1'] for s in common], [b[s]['top1'] for s in common])


def paired(a: List[float], b: List[float]) -> str:
    differences = [x - y for x, y in zip(a, b)]
    n = len(differences)
    mean = statistics.mean(differences)
    if n < 2:
        return f'{mean:+.2f} (n=1)'
    half = t_quantile(n - 1) * statistics.stdev(differences) / math.sqrt(n)
    return f'{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]'


def report(args: argparse.Namespace) -> None:
    folder = osp.join(args.out, args.arch)
    rows: Dict[str, Dict[str, Dict[int, dict]]] = {}
    for tag in sorted(os.listdir(folder)):
        if not osp.isdir(osp.join(folder, tag)) or not tag.startswith(args.split):
            continue
        for name in sorted(os.listdir(osp.join(folder, tag))):
            with open(osp.join(folder, tag, name)) as file:
                result = json.load(file)
            rows.setdefault(tag, {}).setdefault(result['variant'], {})[result['seed']] = result
    for tag, variants in rows.items():
        print(f'\n### {args.arch}, {tag}\n')
        print('| variant | n | converted top-1 (classes 0-4) | top-1 (5-9) mean ± std | '
              'vs plain, 95% CI | vs removed, 95% CI | trainable | s/iter | peak RSS MiB |')
        print('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
        for variant in [v for v in VARIANTS if v in variants]:
            runs = variants[variant]
            seeds = sorted(runs)
            top1 = [runs[s]['top1'] for s in seeds]
            converted = [runs[s]['converted_top1'] for s in seeds]
            cells = ['-' if reference == variant else
                     paired_on_common_seeds(runs, variants.get(reference, {})) or '-'
                     for reference in ('plain', 'removed')]
            spread = statistics.stdev(top1) if len(top1) > 1 else float('nan')
            print(f'| {variant} | {len(seeds)} | {statistics.mean(converted):.2f} | '
                  f'{statistics.mean(top1):.2f} ± {spread:.2f} | {cells[0]} | {cells[1]} | '
                  f'{runs[seeds[0]]["trainable"]:,} | '
                  f'{statistics.median(runs[s]["s_per_iter"] for s in seeds):.4f} | '
                  f'{max(runs[s]["peak_rss_mb"] for s in seeds):.0f} |')
    compared = settings_compared(rows)
    if compared:
        print(f'\n### {args.arch}, {args.split}: one variant under two settings, paired by seed\n')
        print('\n'.join(compared))


def settings_compared(rows: Dict[str, Dict[str, Dict[int, dict]]]) -> List[str]:
    """Markdown rows: top-1 of each variant under every two settings (``rows``' tags, e.g.
    ``val_s100_i300_lr0.0005_mdefault``) that ran it, the difference paired by seed."""
    lines = []
    for variant in VARIANTS:
        tags = [tag for tag in rows if variant in rows[tag]]
        for i, first in enumerate(tags):
            for second in tags[i + 1:]:
                a, b = rows[first][variant], rows[second][variant]
                difference = paired_on_common_seeds(a, b)
                if difference:
                    lines.append(f'| {variant} | {first} | {second} | '
                                 f'{len(set(a) & set(b))} | {difference} |')
    if not lines:
        return []
    return ['| variant | setting A | setting B | n | A - B, 95% CI |',
            '|---|---|---|---:|---:|'] + lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=['pretrain', 'run', 'report', 'costs'])
    parser.add_argument('--arch', choices=list(ARCHS), default='resnet20')
    parser.add_argument('--out', default='work_dirs/transfer')
    parser.add_argument('--iters', type=int, default=300,
                        help='fine-tuning iterations (pretrain: default per arch)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument('--split', choices=['val', 'test'], default='val')
    parser.add_argument('--shots', type=int, default=100, help='training images per class')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--lr', type=float, help='fine-tuning lr (default: the arch\'s)')
    parser.add_argument('--coefficient-lr-mult', type=float,
                        help='repl.coefficient_lr_mult (default: the product\'s)')
    parser.add_argument('--light-norm', choices=LIGHT_NORMS,
                        help='repl.light_norm of the light variants (default: the product\'s); '
                        'results go to their own folder (_ln<value>)')
    args = parser.parse_args()
    if args.command == 'pretrain':
        args.iters = None if args.iters == 300 else args.iters
    {'pretrain': pretrain, 'run': run, 'report': report, 'costs': costs}[args.command](args)


if __name__ == '__main__':
    sys.exit(run_tool(main))
