"""The memory ledger of a config's training step, for the config and its variants
(``tools/analysis/cost_report.py CONFIG --ledger``).

Each variant (``variants.VariantBuilder``: plain, RepL fused / light with either norm / removed,
each alone and with a peer: more ``frozen_stages``, ``with_cp``, AMP; on request ``recompute``,
the plan's blocks checkpointed) runs in its own process
(``python -m repl_mm.analysis.ledger_report SPEC RESULT``): the allocator's measured peak needs a
profiler that starts before the model is built, and torch's CPU allocator keeps sizes across
profiler sessions, so a second session in one process misreads frees. A worker:

1. starts ``AllocatorPeak`` (CPU: the profiler's allocator events; CUDA: max_memory_allocated);
2. builds the config's model (or its backbone alone) and the optim wrapper from the config's
   ``optim_wrapper``, as mmengine's Runner does (``build_optim_wrapper``);
3. creates the optimizer state a steady-state step starts with: one optimizer step on zero
   gradients (the same tensors a real first step makes, without its cost), gradients then freed;
4. runs one training step (``model.train_step`` on a synthetic batch of the config's training
   input size and batch, or the backbone alone on a random batch) inside ``StepLedger``.

It reports the ledger at the step's peak per category and per part (each backbone stage and block,
replaced blocks marked, neck, heads), the bytes saved for backward in the forward pass, FLOPs and
elementwise / norm bytes forward and backward, and the measured peak.
"""
import json
import os
import os.path as osp
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from repl_core import ReplError, RemovedBlock, is_replaced
from repl_mm.engine.cost_figures import torch_optimizers
from repl_mm.engine.ledger import CATEGORIES, OTHER_KINDS, LedgerResult, StepLedger
from repl_mm.engine.memory import MIB
from .allocator_peak import AllocatorPeak
from .cost_report import backbone_stages, ratio_text, si_number
from .params import ParameterCount
from .synthetic import (backbone_input, backbone_step, framework_of, input_channels,
                        model_cfg_of, synthetic_batch, train_input_shape)
from .variants import KINDS, VariantBuilder, apply_recompute_blocks
from .worker import run_environment, run_worker, write_report

#: backbone kinds of the ledger's variants, and the peers each is combined with
LEDGER_KINDS = tuple(kind for kind in KINDS if kind != 'light')
DEFAULT_PEERS = ('frozen', 'cp', 'amp')
#: ``recompute`` (the plan's blocks checkpointed) only when asked for
LEDGER_PEERS = DEFAULT_PEERS + ('recompute',)
#: every kind alone, then every kind with each default peer
DEFAULT_VARIANTS = tuple(LEDGER_KINDS) + tuple(f'{kind}+{peer}' for peer in DEFAULT_PEERS
                                               for kind in LEDGER_KINDS)
CATEGORY_TITLES = dict(parameters='parameters', gradients='gradients',
                       optimizer_state='optimizer state', synthesised_weights='synthesised',
                       autocast_weight_copies='autocast copies', gradient_buckets='DDP buckets',
                       activations='activations', gradients_in_flight='gradients in flight',
                       optimizer_temporaries='optimizer temporaries', other='other')


def parse_variant(name: str) -> Tuple[str, Tuple[str, ...]]:
    """``'fused+cp'`` -> ``('fused', ('cp',))``.

    Raises:
        ReplError: an unknown kind or peer.
    """
    kind, *peers = name.split('+')
    if kind not in LEDGER_KINDS or any(p not in LEDGER_PEERS for p in peers):
        raise ReplError(f'Unknown variant {name!r}: a kind ({", ".join(LEDGER_KINDS)}) and '
                        f'optional peers joined by + ({", ".join(LEDGER_PEERS)}), e.g. '
                        f'fused+cp.')
    return kind, tuple(peers)


# ----------------------------------------------------------------------------------- parts
def _block_label(block: nn.Module) -> str:
    if isinstance(block, RemovedBlock):
        return 'removed'
    if is_replaced(block):
        return 'replaced'
    return ''


def part_rows(model: nn.Module, backbone_only: bool) -> List[Dict[str, Any]]:
    """The rows of the per-part ledger, in forward order: the backbone's stem (and whatever is
    not in a stage), each stage followed by its blocks, the backbone, every other top-level part
    of the model (neck, heads), the model's own operations (its loss, ``''``), the total.

    Each row: ``name``, ``level`` (``block``, ``stage``, ``rest``, ``part``, ``own``, ``total``),
    ``prefix`` (module path whose storages it sums; ``None`` for the difference rows), ``label``
    (``replaced`` / ``removed`` for blocks) and ``params`` (``ParameterCount``).
    """
    backbone = model if backbone_only else getattr(model, 'backbone', None)
    base = '' if backbone_only else 'backbone'
    rows: List[Dict[str, Any]] = []

    def row(name, level, prefix, module=None, label=''):
        rows.append(dict(name=name, level=level, prefix=prefix, label=label,
                         params=ParameterCount.of(module).to_dict() if module is not None
                         else None))

    if isinstance(backbone, nn.Module):
        row(f'{base or "backbone"} (stem, other)', 'rest', None)
        for name, path in backbone_stages(backbone):
            container = backbone.get_submodule(path)
            stage = f'{base}.{path}' if base else path
            row(f'{base}.{name}' if base else name, 'stage', stage, container)
            for index, block in enumerate(container):
                row(f'{stage}.{index}', 'block', f'{stage}.{index}', block, _block_label(block))
        row(base or 'backbone', 'part', base, backbone)
    if not backbone_only:
        for name, child in model.named_children():
            if child is not backbone:
                row(name, 'part', name, child)
        row('model itself (loss, no module)', 'own', None)
    row('total', 'total', '', model)
    _stem_params(rows)
    return rows


def _stem_params(rows: List[Dict[str, Any]]) -> None:
    """The stem row's parameter counts: the backbone's less its stages'."""
    stem = rows[0]
    if stem['level'] != 'rest':
        return
    backbone = next(r for r in rows if r['level'] == 'part')
    stages = [r for r in rows if r['level'] == 'stage']
    stem['params'] = {key: value - sum(s['params'][key] for s in stages)
                      for key, value in backbone['params'].items()}


def _within(path: str, prefix: str) -> bool:
    return prefix == '' or path == prefix or path.startswith(prefix + '.')


def sum_by_row(rows: List[Dict[str, Any]], values: Dict[str, float]) -> List[float]:
    """``values`` (by module path) summed into ``rows``: a row sums the paths under its
    prefix; the stem row is the backbone less its stages, the model's own row the total less
    its parts."""
    sums = [None if r['prefix'] is None else
            sum(v for path, v in values.items() if _within(path, r['prefix'])) for r in rows]
    levels = [r['level'] for r in rows]
    for index, level in enumerate(levels):
        if level == 'rest':
            backbone = levels.index('part')
            sums[index] = sums[backbone] - sum(s for s, lv in zip(sums, levels) if lv == 'stage')
        elif level == 'own':
            sums[index] = sums[levels.index('total')] - sum(
                s for s, lv in zip(sums, levels) if lv == 'part')
    return sums


def _by_path(items) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for path, value in items:
        out[path] = out.get(path, 0) + value
    return out


def ledger_parts(rows: List[Dict[str, Any]], result: LedgerResult) -> List[Dict[str, Any]]:
    """The rows with the ledger's figures: ``peak`` bytes per category, ``saved_in_forward``
    bytes, ``flops_forward``, ``flops_backward`` and ``elementwise_bytes`` (read + written,
    forward and backward)."""
    columns: Dict[str, List[float]] = {}
    for category in CATEGORIES:
        columns[category] = sum_by_row(rows, _by_path(
            (p, v) for (c, _, p), v in result.peak.bytes.items() if c == category))
    columns['saved_in_forward'] = sum_by_row(rows, _by_path(
        (p, v) for (_, p), v in result.saved_in_forward.items()))
    for phase in ('forward', 'backward'):
        columns[f'flops_{phase}'] = sum_by_row(rows, _by_path(
            (p, v) for (p, ph), v in result.flops.items() if ph == phase))
    columns['elementwise_bytes'] = sum_by_row(rows, _by_path(
        (p, sum(v)) for (p, ph), v in result.elementwise_bytes.items() if ph != 'optimizer'))
    parts = []
    for index, r in enumerate(rows):
        part = {k: v for k, v in r.items() if k != 'prefix'}
        part['peak'] = {c: columns[c][index] for c in CATEGORIES}
        for key in ('saved_in_forward', 'flops_forward', 'flops_backward', 'elementwise_bytes'):
            part[key] = columns[key][index]
        parts.append(part)
    return parts


# ---------------------------------------------------------------------------------- worker
def create_optimizer_state(model: nn.Module, optimizers: Sequence[torch.optim.Optimizer]) -> None:
    """The state a steady-state step starts with: one step of each optimizer on zero gradients
    (momentum buffers, Adam moments: the tensors a real step makes), the gradients then freed."""
    params = [p for p in model.parameters() if p.requires_grad]
    for param in params:
        param.grad = torch.zeros_like(param)
    for optimizer in optimizers:
        optimizer.step()
    for param in params:
        param.grad = None


def measure_ledger(cfg, device: str = 'cpu', shape: Optional[Sequence[int]] = None,
                   batch_size: Optional[int] = None, backbone_only: bool = False,
                   seed: int = 0) -> Dict[str, Any]:
    """One variant's ledger, in this process (see the module docstring). The measured peak is
    only right in a process whose first profiler session this is: run it in a worker
    (``run_ledgers``)."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import set_random_seed
    framework = framework_of(cfg)
    shape = tuple(shape) if shape else train_input_shape(cfg)
    batch_size = batch_size or (cfg.get('train_dataloader') or {}).get('batch_size', 1)
    init_default_scope(framework)
    set_random_seed(seed)
    with AllocatorPeak(device) as measured:
        model = MODELS.build(cfg.model.backbone if backbone_only else model_cfg_of(cfg))
        apply_recompute_blocks(cfg, model if backbone_only else model.backbone)
        model = model.to(device)
        if not any(p.requires_grad for p in model.parameters()):
            raise ReplError('Nothing in the model trains (every stage frozen?): no training '
                            'step to measure.')
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        optimizers = torch_optimizers(optim_wrapper)
        create_optimizer_state(model, optimizers)
        model.train()
        if backbone_only:
            inputs = backbone_input(cfg, batch_size, shape, seed).to(device)
            step = backbone_step(model, inputs, optim_wrapper)
            batch_input_shape = list(inputs.shape)
        else:
            batch = synthetic_batch(framework, shape, batch_size, input_channels(cfg))
            with torch.no_grad():
                batch_input_shape = list(model.data_preprocessor(batch, True)['inputs'].shape)

            def step() -> None:
                model.train_step(batch, optim_wrapper)

        ledger = StepLedger(model, optimizers, torch.device(device))
        with measured.step():
            start = time.perf_counter()
            with ledger:
                step()
            seconds = time.perf_counter() - start
    result = ledger.result()
    ledger.close()
    rows = part_rows(model, backbone_only)
    backbone = model if backbone_only else getattr(model, 'backbone', None)
    return dict(
        device=device, threads=torch.get_num_threads(), batch_size=batch_size,
        shape=list(shape), batch_input_shape=batch_input_shape, backbone_only=backbone_only,
        optim_wrapper=cfg.optim_wrapper.get('type', 'OptimWrapper'),
        optimizer=cfg.optim_wrapper.get('optimizer', {}).get('type'),
        repl=backbone.repl_meta() if callable(getattr(backbone, 'repl_meta', None)) else None,
        params=ParameterCount.of(model).to_dict(), seconds=seconds,
        measured=measured.result(), ops=result.ops,
        peak=dict(total=result.peak.total, phase=result.peak.phase,
                  op_index=result.peak.op_index, by_category=result.peak.by_category(),
                  other_kinds=result.peak.other_kinds()),
        optimizer_step=result.optimizer_step.by_category() if result.optimizer_step else None,
        saved_in_forward=result.saved_by_category(),
        flops=dict(forward=result.total_flops('forward'),
                   backward=result.total_flops('backward')),
        elementwise_bytes=dict(forward=result.total_elementwise_bytes('forward'),
                               backward=result.total_elementwise_bytes('backward')),
        parts=ledger_parts(rows, result))


def _worker(spec_path: str, result_path: str) -> None:
    from mmengine.config import Config
    with open(spec_path) as file:
        spec = json.load(file)
    torch.set_num_threads(spec.pop('threads'))
    cfg = Config.fromfile(spec.pop('config'))
    with open(result_path, 'w') as file:
        json.dump(measure_ledger(cfg, **spec), file)


# ---------------------------------------------------------------------------------- parent
def run_ledgers(cfg, config_name: str, out_dir: str, variants: Sequence[str] = DEFAULT_VARIANTS,
                device: str = 'cpu', shape: Optional[Sequence[int]] = None,
                batch_size: Optional[int] = None, backbone_only: bool = False,
                frozen_stages: Optional[int] = None, threads: Optional[int] = None,
                command: str = '', log=print) -> Dict[str, Any]:
    """The ledger of every variant, each in its own process; writes ``ledger.json``,
    ``ledger.md`` and ``ledger.png`` (and ``configs/``, ``logs/``) to ``out_dir`` and returns
    the JSON's content."""
    if device == 'cuda' and not torch.cuda.is_available():
        raise ReplError('--device cuda: CUDA is not available here; use --device cpu.')
    parsed = [(name, *parse_variant(name)) for name in variants]
    builder = VariantBuilder(cfg, device, frozen_stages)
    shape = list(shape) if shape else list(train_input_shape(cfg))
    batch_size = batch_size or (cfg.get('train_dataloader') or {}).get('batch_size', 1)
    threads = threads or torch.get_num_threads()
    for sub in ('configs', 'logs'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    results, started, load_start = [], time.time(), os.getloadavg()
    for index, (name, kind, peers) in enumerate(parsed):
        spec = builder.build(name, kind, peers)
        entry: Dict[str, Any] = dict(name=name, kind=kind, peers=list(peers),
                                     description=spec.description, skipped=spec.skipped)
        results.append(entry)
        if spec.skipped:
            log(f'[{index + 1}/{len(parsed)}] {name}: skipped ({spec.skipped})')
            continue
        stem = osp.join(out_dir, '{}', name.replace('+', '_'))
        config_path = osp.abspath(stem.format('configs') + '.py')
        spec.cfg.dump(config_path)
        worker_spec = dict(config=config_path, device=device, shape=shape,
                           batch_size=batch_size, backbone_only=backbone_only, threads=threads)
        variant_start = time.time()
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONWARNINGS='ignore')
        output = run_worker([sys.executable, '-m', 'repl_mm.analysis.ledger_report'],
                            worker_spec, stem.format('logs'), env)
        entry['wall_seconds'] = time.time() - variant_start
        if 'error' in output:
            entry['error'] = output['error']
            log(f'[{index + 1}/{len(parsed)}] {name}: FAILED: {output["error"]} '
                f'(log: {output["log"]})')
            continue
        entry.update(output)
        log(f'[{index + 1}/{len(parsed)}] {name}: ledger peak '
            f'{output["peak"]["total"] / MIB:,.0f} MiB, measured '
            f'{output["measured"]["peak_bytes"] / MIB:,.0f} MiB; step {output["seconds"]:.1f} s, '
            f'{entry["wall_seconds"]:.0f} s in all')
    report = dict(config=config_name, command=command, device=device, shape=shape,
                  batch_size=batch_size, backbone_only=backbone_only, threads=threads,
                  environment=run_environment(device, started, load_start, time.time()),
                  variants=results)
    add_ratios(report)
    write_report(out_dir, 'ledger', report, format_ledger_markdown(report), plot_ledgers)
    return report


def add_ratios(report: Dict[str, Any]) -> None:
    """Each measured variant's ratios: measured peak, bytes saved for backward and trainable
    parameters against ``plain`` and against ``removed`` with the same peers (the plain peer
    variants against plain itself)."""
    measured = {v['name']: v for v in report['variants'] if 'measured' in v}

    def ratio(variant, other_name, value):
        other = measured.get(other_name)
        return value(variant) / value(other) if other and value(other) else None

    figures = dict(peak=lambda v: v['measured']['peak_bytes'],
                   saved=lambda v: sum(v['saved_in_forward'].values()),
                   trainable=lambda v: v['params']['trainable'])
    for variant in measured.values():
        suffix = ''.join(f'+{p}' for p in variant['peers'])
        plain = 'plain' if variant['kind'] == 'plain' else f'plain{suffix}'
        variant['ratios'] = {f'{key}_vs_{ref}': ratio(variant, name, value)
                             for key, value in figures.items()
                             for ref, name in (('plain', plain), ('removed', f'removed{suffix}'))}


# ---------------------------------------------------------------------------------- outputs
def _mib(value: Optional[float]) -> str:
    return '' if value is None else f'{value / MIB:,.1f}'


def _inside(measured: Dict[str, Any]) -> str:
    """The operator running at the measured peak and what it had allocated itself."""
    if not measured.get('peak_operator'):
        return ''
    shapes = ', '.join('x'.join(map(str, shape)) for shape in
                       (measured.get('peak_operator_shapes') or [])[:3] if shape)
    return (f'{measured["peak_operator"].removeprefix("aten::")}'
            + (f' of {shapes}' if shapes else '')
            + f' ({_mib(measured["peak_operator_bytes"])})')


def _shown_categories(variants: Sequence[Dict[str, Any]]) -> List[str]:
    """Every category, less autocast copies and DDP buckets where no variant has them."""
    optional = ('autocast_weight_copies', 'gradient_buckets')
    return [c for c in CATEGORIES if c not in optional
            or any(v['peak']['by_category'][c] for v in variants)]


def format_ledger_markdown(report: Dict[str, Any]) -> str:
    """The variants' ledgers at the peak, their ratios and work, and each kind's per-part
    ledger, as markdown."""
    measured = [v for v in report['variants'] if 'measured' in v]
    h, w = report['shape']
    first = measured[0] if measured else {}
    what = 'backbone only' if report['backbone_only'] else 'whole model, model.train_step'
    lines = [f'### {report["config"]}: ledger of one training step ({what}), batch '
             f'{report["batch_size"]} at {h}x{w}'
             + (f' (model input {"x".join(map(str, first["batch_input_shape"]))})'
                if first else ''), '',
             f'{report["device"]}, {report["threads"]} threads, torch '
             f'{report["environment"]["torch"]}; optimizer {first.get("optimizer")} '
             f'({first.get("optim_wrapper")}); one process per variant; '
             f'{report["environment"]["wall_minutes"]:.1f} min in all (load average '
             f'{report["environment"]["load_average_start"][0]:.1f} at the start, '
             f'{report["environment"]["load_average_end"][0]:.1f} at the end).'
             + (f' Command: `{report["command"]}`' if report.get('command') else ''), '']
    categories = _shown_categories(measured)
    lines += ['Memory at the step\'s peak (MiB): every live tensor storage once, in one category.',
              '', '| variant | ' + ' | '.join(CATEGORY_TITLES[c] for c in categories)
              + ' | ledger peak | measured peak | ledger / measured | peak vs plain | '
                'peak vs removed | ledger peak in | measured peak inside: operator of input '
                'shapes (its own MiB) |',
              '|---|' + '---:|' * (len(categories) + 5) + '---|---|']
    for v in measured:
        by_category, r = v['peak']['by_category'], v['ratios']
        lines.append(
            f'| {v["name"]} | ' + ' | '.join(_mib(by_category[c]) for c in categories)
            + f' | {_mib(v["peak"]["total"])} | {_mib(v["measured"]["peak_bytes"])} | '
              f'{v["peak"]["total"] / v["measured"]["peak_bytes"]:.3f} | '
              f'{ratio_text(r["peak_vs_plain"], 3)} | {ratio_text(r["peak_vs_removed"], 3)} | '
              f'{v["peak"]["phase"]} | {_inside(v["measured"])} |')
    lines += ['', '| variant | what | saved for backward MiB | vs plain | vs removed | '
                  'of it activations | trainable params | vs plain | FLOPs fwd | FLOPs bwd | '
                  'elementwise + norm bytes | other at peak: ' + ', '.join(OTHER_KINDS)
              + ' (MiB) | step s (ledger on) |',
              '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|']
    for v in measured:
        saved, r = v['saved_in_forward'], v['ratios']
        other = ', '.join(_mib(v['peak']['other_kinds'][k]) for k in OTHER_KINDS)
        lines.append(
            f'| {v["name"]} | {v["description"]} | {_mib(sum(saved.values()))} | '
            f'{ratio_text(r["saved_vs_plain"], 3)} | {ratio_text(r["saved_vs_removed"], 3)} | '
            f'{_mib(saved["activations"])} | {v["params"]["trainable"]:,} | '
            f'{ratio_text(r["trainable_vs_plain"], 3)} | {si_number(v["flops"]["forward"])} | '
            f'{si_number(v["flops"]["backward"])} | '
            f'{si_number(sum(v["elementwise_bytes"].values()))} | {other} | '
            f'{v["seconds"]:.1f} |')
    notes = [f'- {v["name"]}: not run ({v["skipped"]}).' for v in report['variants']
             if v.get('skipped')]
    notes += [f'- {v["name"]}: did not run: {v["error"]}' for v in report['variants']
              if v.get('error')]
    lines += ['', 'Measured peak: ' + (first.get('measured', {}).get('source', '') or '')
              + ', from before the model was built; on the CPU also the operator running at '
              'that moment and the bytes it had allocated itself (its outputs so far and its '
              'workspace), which the ledger, summing tensors between operators, cannot see. '
              'Ratios: to the variant with the same peers '
              '(`fused+cp` to `plain+cp`, `removed+cp`); a plain peer variant (`plain+cp`) to '
              '`plain`. Saved for backward: every storage autograd saved in the forward pass, '
              'once (parameters and synthesised weights included); "of it activations" leaves '
              'those out. FLOPs: torch.utils.flop_counter\'s formulas (a multiply-add is 2 '
              'FLOPs); elementwise + norm bytes: read and written by elementwise and '
              'normalisation operators, forward and backward.'] + ([''] + notes if notes else [])
    for v in measured:
        if not v['peers']:
            lines += ['', format_parts_markdown(v)]
    return '\n'.join(lines)


def format_parts_markdown(variant: Dict[str, Any]) -> str:
    """One variant's ledger at the peak by part: stem, stages and their blocks (replaced and
    removed ones marked), other parts, total."""
    categories = _shown_categories([variant])
    lines = [f'#### {variant["name"]} ({variant["description"]}): by part, at the peak '
             f'({variant["peak"]["phase"]}), MiB', '',
             '| part | trainable params | ' + ' | '.join(CATEGORY_TITLES[c] for c in categories)
             + ' | at peak | saved for backward | FLOPs fwd | FLOPs bwd | elementwise + norm '
               'bytes |', '|---|---:|' + '---:|' * (len(categories) + 5)]
    for part in variant['parts']:
        name = part['name'] + (f' ({part["label"]})' if part['label'] else '')
        if part['level'] == 'block':
            name = '&nbsp;&nbsp;' + name
        trainable = f'{part["params"]["trainable"]:,}' if part['params'] else ''
        peak = part['peak']
        lines.append(f'| {name} | {trainable} | '
                     + ' | '.join(_mib(peak[c]) for c in categories)
                     + f' | {_mib(sum(peak.values()))} | {_mib(part["saved_in_forward"])} | '
                       f'{si_number(part["flops_forward"])} | '
                       f'{si_number(part["flops_backward"])} | '
                       f'{si_number(part["elementwise_bytes"])} |')
    return '\n'.join(lines)


def plot_ledgers(report: Dict[str, Any], out: str) -> None:
    """Stacked bars: each variant's ledger at its peak by category (MiB), the measured peak as
    a black line over each bar."""
    from matplotlib.figure import Figure
    measured = [v for v in report['variants'] if 'measured' in v]
    if not measured:
        return
    categories = _shown_categories(measured)
    figure = Figure(figsize=(max(6.0, 0.6 * len(measured) + 3), 5.0), constrained_layout=True)
    ax = figure.subplots()
    names = [v['name'] for v in measured]
    bottoms = [0.0] * len(measured)
    for index, category in enumerate(categories):
        values = [v['peak']['by_category'][category] / MIB for v in measured]
        ax.bar(names, values, bottom=bottoms, label=CATEGORY_TITLES[category],
               color=f'C{index}')
        bottoms = [b + value for b, value in zip(bottoms, values)]
    ax.hlines([v['measured']['peak_bytes'] / MIB for v in measured],
              [i - 0.4 for i in range(len(measured))], [i + 0.4 for i in range(len(measured))],
              color='black', linewidth=2, label='measured peak')
    ax.set_ylabel('MiB at the step\'s peak')
    ax.tick_params(axis='x', labelrotation=60)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment('right')
    ax.legend(fontsize='small', loc='upper left', bbox_to_anchor=(1.0, 1.0))
    h, w = report['shape']
    ax.set_title(f'{report["config"]}: batch {report["batch_size"]} at {h}x{w}, '
                 f'{report["device"]}', fontsize='medium')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    figure.savefig(out, dpi=100)


if __name__ == '__main__':
    from repl_mm.engine.cli import run_tool
    import repl_mm  # noqa: F401  (registers the RepL classes in the worker)
    run_tool(lambda: _worker(sys.argv[1], sys.argv[2]))
