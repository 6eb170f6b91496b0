"""RepL against its plain backbone and the peers a user would pick instead, on one synthetic batch.

Behind ``benchmarks/benchmark.py``. Given a config whose backbone is a RepL backbone (or a plain one
with a RepL twin), the variants are:

* ``baseline``: the plain backbone (``plain_model_cfg``), everything else as configured;
* ``repl-fused``, ``repl-light``: the RepL backbone with the config's ``repl`` (default plan for a
  plain config), ``kind`` set;
* ``removed``: ``kind='removed'``, the same plan's blocks deleted: the cost floor of any surrogate;
* peers, each on the plain backbone and only where its class takes the argument:
  ``frozen-stages`` (``frozen_stages``, see ``default_frozen_stages``), ``checkpointing``
  (``with_cp=True``), ``stochastic-depth`` (``drop_path_rate``; mmdet's and mmseg's ResNets have
  none, mmpretrain's has), ``amp`` (mmengine's ``AmpOptimWrapper`` fp16 with a dynamic loss scale
  on CUDA, repl-mm's ``CPUAutocastOptimWrapper`` bf16 on CPU).

Each measurement runs in its own process (``benchmarks/benchmark_worker.py``), one
after another, with the same seed, thread count and synthetic batch; the variants run in forward
order on even repeats and in reverse order on odd ones, so a drifting machine load favours none.
Workers run with ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it: on a shared CPU,
spinning OpenMP threads otherwise stall for whole scheduler slices (see ``_run_worker``).
With ``malloc='steady'`` (the default) they also run with glibc's ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` at 1 GiB (``STEADY_MALLOC``), so that freed activations stay in the
heap and are reused: with glibc's defaults, tensors over 32 MiB are always fresh ``mmap``s and
smaller ones are given back to the kernel whenever the heap top is free, and the minor page faults
of re-touching that memory (their number per step follows the allocation history of the process,
not the model, so it differs between processes running the same variant; see docs/benchmarks.md)
swamp small differences between variants. ``malloc='system'``
keeps the environment's allocator; each worker reports its ``minor_faults_per_step`` either way.
A worker builds its variant, runs ``warmup + iters`` training steps and reports the seconds of
each timed step and the peak memory of the timed steps; the first repeat of each variant also
counts FLOPs on a freshly built, identically seeded copy (after the timing, so it cannot touch the
memory figure).

A training step is the real one: ``model.train_step(batch, optim_wrapper)`` with the config's
optimizer wrapper (data preprocessor, losses, backward, optimizer step) in ``'model'`` mode; in
``'backbone'`` mode the backbone alone on a ``(N, C, H, W)`` normal-random input: forward, the
loss ``sum over outputs of mean(out ** 2)`` (a mean so that the gradient scale, and with it the
weights after some optimizer steps, stays finite whatever the output size), backward, optimizer
step, through the same optimizer wrapper (so ``amp`` autocasts it).

Memory (MiB): CPU: the worker's peak resident set size over the timed steps (``VmHWM``, the whole
process: libraries, weights, gradients, optimizer state, activations) and ``training_mb``, that
peak minus the resident size before the first step (what training adds to the built model);
CUDA: ``max_memory_allocated`` and that minus the memory allocated before the first step.
"""
import copy
import os
import os.path as osp
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from repl_mm.analysis import ParameterCount
from repl_mm.analysis.cost_report import forward_flops, ratio_text, si_number
from repl_mm.analysis.step_timing import device_sync, timed_steps
from repl_mm.analysis.synthetic import (backbone_input, backbone_step, framework_of,
                                        input_channels, input_shape, synthetic_batch)
from repl_mm.analysis.variants import VariantBuilder, VariantSpec
from repl_mm.analysis.worker import run_environment, run_worker, write_report
from repl_core import ReplError
from repl_mm.engine.memory import MIB, ProcessPeakMemory, peak_memory_meter

#: every variant, in the forward order of the runs and tables
VARIANTS = ('baseline', 'repl-fused', 'repl-light', 'removed', 'frozen-stages', 'checkpointing',
            'stochastic-depth', 'amp')
MODES = ('model', 'backbone')
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'benchmark_worker.py')


# ---------------------------------------------------------------------------------- variants
#: this benchmark's variant names: (backbone kind, peers) of ``repl_mm.analysis.variants``
VARIANT_KINDS = {'baseline': ('plain', ()), 'repl-fused': ('fused', ()),
                 'repl-light': ('light', ()), 'removed': ('removed', ()),
                 'frozen-stages': ('plain', ('frozen', )), 'checkpointing': ('plain', ('cp', )),
                 'stochastic-depth': ('plain', ('drop-path', )), 'amp': ('plain', ('amp', ))}


def variant_specs(cfg, variants: Sequence[str] = VARIANTS, device: str = 'cpu',
                  frozen_stages: Optional[int] = None, drop_path_rate: float = 0.1,
                  amp: bool = False) -> List[VariantSpec]:
    """The configs of ``variants`` derived from ``cfg`` (a RepL or plain model config).

    ``amp``: every variant trains in mixed precision (the ratios are then to the plain network
    in mixed precision; the ``amp`` variant itself is skipped as the baseline).

    Raises:
        ReplError: the backbone is neither a RepL backbone nor a plain one with a registered
            RepL twin and RepL variants are asked for, or a variant name is unknown.
    """
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ReplError(f'Unknown variant(s) {unknown}; choose from {list(VARIANTS)}.')
    builder = VariantBuilder(cfg, device, frozen_stages, drop_path_rate)
    specs = []
    for name in variants:
        kind, peers = VARIANT_KINDS[name]
        spec = builder.build(name, kind, peers, amp_everywhere=amp)
        if name == 'amp' and amp:
            spec = VariantSpec(name, spec.description, skipped=(
                'every variant runs in mixed precision (--amp): the baseline is this peer'))
        specs.append(spec)
    return specs


# ------------------------------------------------------------------------ worker: one variant
def _seed_everything(seed: int) -> None:
    from mmengine.runner import set_random_seed
    set_random_seed(seed)


def _build(cfg, mode: str, seed: int, device: str) -> torch.nn.Module:
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(framework_of(cfg))
    _seed_everything(seed)
    module = MODELS.build(cfg.model.backbone if mode == 'backbone' else cfg.model)
    return module.to(device)


def _counts(module: torch.nn.Module, mode: str) -> Dict[str, Dict[str, int]]:
    if mode == 'backbone':
        return {'backbone': ParameterCount.of(module).to_dict()}
    counts = {'model': ParameterCount.of(module).to_dict()}
    if isinstance(getattr(module, 'backbone', None), torch.nn.Module):
        counts['backbone'] = ParameterCount.of(module.backbone).to_dict()
    return counts


def _flops(cfg, mode: str, shape: Tuple[int, int], seed: int, device: str) -> Dict[str, int]:
    """Forward FLOPs of one image (eval mode, no autograd: activation checkpointing, which
    ``jit.trace`` cannot follow, stays off), on a freshly built module of the same seed."""
    from mmengine.analysis import FlopAnalyzer
    module = _build(cfg, mode, seed, device)
    with torch.no_grad():
        if mode == 'model':
            by_module, _ = forward_flops(module, framework_of(cfg), shape, input_channels(cfg))
            return {'model': int(by_module.get('', 0)),
                    'backbone': int(by_module.get('backbone', 0))}
        module.eval()
        analyzer = FlopAnalyzer(module, (backbone_input(cfg, 1, shape, seed).to(device), ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.tracer_warnings('none')
        return {'backbone': int(analyzer.total())}


def measure_variant(config: str, mode: str, batch_size: int, shape: Tuple[int, int], iters: int,
                    warmup: int, seed: int, threads: int, device: str, flops: bool = False,
                    log: Callable[[str], None] = print) -> Dict[str, Any]:
    """What a worker measures for one variant config (a file written by ``run_benchmark``).

    Returns ``seconds`` and ``cpu_seconds`` (wall-clock and process CPU time of every step,
    warm-up included; their ratio is the number of cores the step kept busy), ``warmup``, the
    peak memory keys of ``PeakMemoryMeter`` plus ``memory_before_mb`` and ``training_mb``, the
    parameter counts of the model / backbone, the backbone's replacement (``repl``, RepL
    variants) and, with ``flops``, forward FLOPs of one image.
    """
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    torch.set_num_threads(threads)
    cfg = Config.fromfile(config)
    shape = tuple(shape)
    module = _build(cfg, mode, seed, device)
    backbone = module if mode == 'backbone' else module.backbone
    result: Dict[str, Any] = dict(params=_counts(module, mode), threads=torch.get_num_threads(),
                                  device=device, warmup=warmup)
    if callable(getattr(backbone, 'repl_meta', None)):
        result['repl'] = backbone.repl_meta()
    if not any(p.requires_grad for p in backbone.parameters()):
        raise ReplError('Nothing in the backbone trains (every stage frozen?): there is no '
                        'training step to time; lower --frozen-stages.')
    optim_wrapper = build_optim_wrapper(module, copy.deepcopy(cfg.optim_wrapper))
    module.train()
    if mode == 'backbone':
        inputs = backbone_input(cfg, batch_size, shape, seed).to(device)
        step = backbone_step(module, inputs, optim_wrapper)
        result['batch_input_shape'] = list(inputs.shape)
    else:
        batch = synthetic_batch(framework_of(cfg), shape, batch_size, input_channels(cfg))
        with torch.no_grad():
            inputs = module.data_preprocessor(batch, True)['inputs']
        result['batch_input_shape'] = list(inputs.shape)

        def step() -> None:
            module.train_step(batch, optim_wrapper)

    meter = peak_memory_meter(torch.device(device))
    device_sync(device)()
    before = (meter.current_mb() if isinstance(meter, ProcessPeakMemory) else
              torch.cuda.memory_allocated(device) // MIB)
    faults_start = 0

    def before_timed() -> None:
        nonlocal faults_start
        meter.reset()
        faults_start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def after_step(index: int, seconds: float) -> None:
        log(f'step {index + 1}/{warmup + iters}{" (warm-up)" if index < warmup else ""}: '
            f'{seconds:.3f} s')

    try:
        times = timed_steps(step, iters, warmup, sync=device_sync(device),
                            before_timed=before_timed, after_step=after_step)
        memory = meter.read()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_start
    finally:
        meter.close()
    peak = memory.get('cpu_peak_rss_mb', memory.get('cuda_peak_allocated_mb'))
    result.update(seconds=times.seconds, cpu_seconds=times.cpu_seconds, memory_source=meter.source,
                  minor_faults_per_step=faults / max(iters, 1),
                  memory_before_mb=before, **memory)
    if peak is not None:
        result.update(peak_mb=peak, training_mb=peak - before)
    if flops:
        del module, optim_wrapper, step
        result['flops'] = _flops(cfg, mode, shape, seed, device)
    return result


# ------------------------------------------------------------------------ parent: all variants
@dataclass
class BenchmarkSettings:
    """What every worker of one benchmark shares."""

    config: str
    mode: str = 'model'
    batch_size: int = 2
    shape: Tuple[int, int] = (224, 224)
    iters: int = 10
    warmup: int = 3
    repeats: int = 3
    seed: int = 0
    threads: int = 1
    device: str = 'cpu'
    malloc: str = 'steady'
    amp: bool = False  # every variant in mixed precision


@dataclass
class VariantResult:
    """One variant over all repeats; ratios are to the baseline measured in the same run."""

    name: str
    description: str
    skipped: Optional[str] = None
    error: Optional[str] = None
    params: Dict[str, Dict[str, int]] = field(default_factory=dict)
    flops: Dict[str, int] = field(default_factory=dict)
    repl: Optional[dict] = None
    batch_input_shape: Optional[List[int]] = None
    runs: List[dict] = field(default_factory=list)  # per repeat: seconds (timed), memory, load
    time: Dict[str, float] = field(default_factory=dict)
    memory: Dict[str, float] = field(default_factory=dict)
    ratios: Dict[str, Any] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return bool(self.runs) and self.error is None


def resolve_device(device: Optional[str]) -> str:
    """``'cuda'`` where available unless ``device`` says otherwise."""
    if device is None:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if device == 'cuda' and not torch.cuda.is_available():
        raise ReplError('--device cuda: CUDA is not available here; use --device cpu.')
    return device


#: glibc tunables of ``malloc='steady'``: no mmap for blocks under 1 GiB, no trimming of the heap
STEADY_MALLOC = dict(MALLOC_MMAP_THRESHOLD_=str(1 << 30), MALLOC_TRIM_THRESHOLD_=str(1 << 30))
MALLOC_MODES = ('steady', 'system')


def _run_worker(spec: dict, stem: str, malloc: str = 'steady') -> dict:
    threads = str(spec['threads'])
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
               PYTHONWARNINGS='ignore')
    # Spinning OpenMP threads (the default policy) stall for whole scheduler slices while
    # another process holds a core; passive ones sleep and give the core back.
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    if malloc == 'steady':
        for key, value in STEADY_MALLOC.items():
            env.setdefault(key, value)
    return run_worker([sys.executable, WORKER], spec, stem, env)


def _summarize(result: VariantResult) -> None:
    timed = [run['seconds'] for run in result.runs]
    pooled = [s for seconds in timed for s in seconds]
    q1, q3 = np.percentile(pooled, [25, 75]).tolist()
    result.time = dict(median=statistics.median(pooled), q1=q1, q3=q3, min=min(pooled),
                       max=max(pooled),
                       repeat_medians=[statistics.median(seconds) for seconds in timed],
                       cores_busy=statistics.median(run['cores_busy'] for run in result.runs))
    faults = [run['minor_faults_per_step'] for run in result.runs
              if run.get('minor_faults_per_step') is not None]
    if faults:
        result.time['minor_faults_per_step'] = statistics.median(faults)
    for key in ('peak_mb', 'training_mb'):
        values = [run[key] for run in result.runs if run.get(key) is not None]
        if values:
            result.memory[key] = statistics.median(values)
            result.memory[f'{key}_range'] = [min(values), max(values)]


def _ratios(result: VariantResult, baseline: VariantResult) -> None:
    def ratio(value, reference):
        return value / reference if value is not None and reference else None

    ratios: Dict[str, Any] = {}
    for part in ('backbone', 'model'):
        ours, theirs = result.params.get(part), baseline.params.get(part)
        if ours and theirs:
            ratios[f'trainable_{part}'] = ratio(ours['trainable'], theirs['trainable'])
        if part in result.flops and part in baseline.flops:
            ratios[f'flops_{part}'] = ratio(result.flops[part], baseline.flops[part])
    if result.measured and baseline.measured:
        ratios['time'] = ratio(result.time['median'], baseline.time['median'])
        paired = [ratio(ours, theirs) for ours, theirs in
                  zip(result.time['repeat_medians'], baseline.time['repeat_medians'])]
        ratios['time_per_repeat'] = paired
        ratios['time_range'] = [min(paired), max(paired)]
        ratios['time_fastest'] = ratio(min(result.time['repeat_medians']),
                                       min(baseline.time['repeat_medians']))
        for key in ('peak_mb', 'training_mb'):
            if key in result.memory and key in baseline.memory:
                ratios[key] = ratio(result.memory[key], baseline.memory[key])
    result.ratios = ratios


def run_benchmark(cfg, config_name: str, out_dir: str, variants: Sequence[str] = VARIANTS,
                  mode: str = 'model', repeats: int = 3, iters: int = 10, warmup: int = 3,
                  batch_size: Optional[int] = None, shape: Optional[Sequence[int]] = None,
                  device: Optional[str] = None, threads: Optional[int] = None, seed: int = 0,
                  frozen_stages: Optional[int] = None, drop_path_rate: float = 0.1,
                  malloc: str = 'steady', log: Callable[[str], None] = print,
                  amp: bool = False) -> Dict[str, Any]:
    """Measure every variant (see the module docstring); write ``benchmark.json``,
    ``benchmark.md`` and ``benchmark.png`` to ``out_dir`` and return the JSON's content.

    ``out_dir`` also gets ``configs/<variant>.py`` (the config each worker ran) and
    ``runs/<variant>_r<repeat>.{spec.json,result.json,log}`` (each worker's input, result and
    output).
    """
    if mode not in MODES:
        raise ReplError(f'mode {mode!r}: choose one of {MODES}.')
    if malloc not in MALLOC_MODES:
        raise ReplError(f'malloc {malloc!r}: choose one of {MALLOC_MODES}.')
    if 'baseline' not in variants:
        variants = ('baseline', *variants)
    variants = [v for v in VARIANTS if v in variants]
    device = resolve_device(device)
    settings = BenchmarkSettings(
        config=config_name, mode=mode, repeats=repeats, iters=iters, warmup=warmup, seed=seed,
        device=device, threads=threads or torch.get_num_threads(), malloc=malloc, amp=amp,
        batch_size=batch_size or (cfg.get('train_dataloader') or {}).get('batch_size', 1),
        shape=tuple(shape) if shape else input_shape(cfg))
    specs = variant_specs(cfg, variants, device, frozen_stages, drop_path_rate, amp)
    for sub in ('configs', 'runs'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    results = {spec.name: VariantResult(spec.name, spec.description, skipped=spec.skipped)
               for spec in specs}
    paths = {}
    for spec in specs:
        if spec.cfg is not None:
            paths[spec.name] = osp.abspath(osp.join(out_dir, 'configs', f'{spec.name}.py'))
            spec.cfg.dump(paths[spec.name])
    for spec in specs:
        if spec.skipped:
            log(f'{spec.name}: skipped ({spec.skipped})')
    runnable = [name for name in variants if name in paths]
    total, done, started = repeats * len(runnable), 0, time.time()
    load_start = os.getloadavg()
    for repeat in range(repeats):
        order = runnable if repeat % 2 == 0 else runnable[::-1]
        for name in order:
            result = results[name]
            done += 1
            if result.error:
                continue
            stem = osp.join(out_dir, 'runs', f'{name}_r{repeat}')
            spec = dict(config=paths[name], mode=mode, batch_size=settings.batch_size,
                        shape=list(settings.shape), iters=iters, warmup=warmup, seed=seed,
                        threads=settings.threads, device=device, flops=not result.flops)
            load = os.getloadavg()[0]
            output = _run_worker(spec, stem, malloc)
            elapsed = time.time() - started
            eta = elapsed / done * (total - done)
            if 'error' in output:
                result.error = output['error']
                log(f'[{done}/{total}] repeat {repeat + 1}/{repeats} {name}: FAILED: '
                    f'{result.error} (log: {output["log"]})')
                continue
            timed = output['seconds'][warmup:]
            result.params, result.repl = output['params'], output.get('repl')
            result.batch_input_shape = output['batch_input_shape']
            result.flops = output.get('flops') or result.flops
            cores = sum(output['cpu_seconds'][warmup:]) / max(sum(timed), 1e-9)
            result.runs.append(dict(repeat=repeat, seconds=timed, load_average=load,
                                    cores_busy=cores,
                                    minor_faults_per_step=output.get('minor_faults_per_step'),
                                    **{k: output.get(k) for k in (
                                        'peak_mb', 'training_mb', 'memory_before_mb',
                                        'memory_source', 'cpu_peak_rss_mb',
                                        'cuda_peak_allocated_mb', 'cuda_peak_reserved_mb')}))
            log(f'[{done}/{total}] repeat {repeat + 1}/{repeats} {name}: median '
                f'{statistics.median(timed):.3f} s/iter (min {min(timed):.3f}, max '
                f'{max(timed):.3f}), {cores:.2f} cores busy, peak {output.get("peak_mb")} MiB; '
                f'load {load:.1f}; '
                f'elapsed {elapsed / 60:.1f} min, about {eta / 60:.1f} min left')
    for result in results.values():
        if result.runs:
            _summarize(result)
    baseline = results['baseline']
    if not baseline.measured:
        raise ReplError(f'The baseline failed: {baseline.error}; nothing to compare with.')
    for result in results.values():
        _ratios(result, baseline)
    report = dict(settings=asdict(settings),
                  environment=run_environment(device, started, load_start, time.time()),
                  variants=[asdict(results[name]) for name in variants])
    write_report(out_dir, 'benchmark', report, format_markdown(report), plot_benchmark)
    return report


# ---------------------------------------------------------------------------------- outputs
def _plan(repl: Optional[dict]) -> str:
    if not repl:
        return ''
    return ', '.join(f'{stage}[{",".join(map(str, indices))}]'
                     for stage, indices in repl['plan'].items() if indices)


def format_markdown(report: Dict[str, Any]) -> str:
    """Two tables (what each variant is; what it measured) and the settings, as markdown."""
    settings, environment = report['settings'], report['environment']
    variants = report['variants']
    backbone_mode = settings['mode'] == 'backbone'
    h, w = settings['shape']
    shape = next((v['batch_input_shape'] for v in variants if v['batch_input_shape']), None)
    lines = [f'### {settings["config"]}: '
             + ('backbone only' if backbone_mode else 'whole model')
             + f', batch {settings["batch_size"]} at {h}x{w}'
             + (', every variant in mixed precision' if settings.get('amp') else '')
             + (f' (model input {"x".join(map(str, shape))})' if shape else ''), '',
             f'{settings["device"]}, {settings["threads"]} threads, torch '
             f'{environment["torch"]}, malloc {settings.get("malloc", "system")}; '
             f'{settings["repeats"]} repeats (separate processes, order '
             f'reversed on odd repeats) x {settings["iters"]} timed iterations after '
             f'{settings["warmup"]} warm-up; load average '
             f'{environment["load_average_start"][0]:.1f} at the start, '
             f'{environment["load_average_end"][0]:.1f} at the end '
             f'({environment["wall_minutes"]:.1f} min).', '']
    lines += ['| variant | what | trainable backbone params | ratio | '
              + ('' if backbone_mode else 'trainable model params | ratio | ')
              + 'backbone FLOPs | ratio | ' + ('' if backbone_mode else 'model FLOPs | ratio | ')
              + 'replaced |',
              '|---|---|---:|---:|' + ('' if backbone_mode else '---:|---:|')
              + '---:|---:|' + ('' if backbone_mode else '---:|---:|') + '---|']
    for v in variants:
        if v['skipped'] or not v['params']:
            continue
        ratios, params, flops = v['ratios'], v['params'], v['flops']
        cells = [v['name'], v['description'], f'{params["backbone"]["trainable"]:,}',
                 ratio_text(ratios.get('trainable_backbone'))]
        if not backbone_mode:
            cells += [f'{params["model"]["trainable"]:,}',
                      ratio_text(ratios.get('trainable_model'))]
        cells += [si_number(flops.get('backbone')), ratio_text(ratios.get('flops_backbone'))]
        if not backbone_mode:
            cells += [si_number(flops.get('model')), ratio_text(ratios.get('flops_model'))]
        cells.append(_plan(v['repl']))
        lines.append('| ' + ' | '.join(cells) + ' |')
    memory_key = 'CUDA max allocated' if settings['device'] == 'cuda' else 'peak RSS'
    lines += ['', f'| variant | s/iter median | IQR | min-max | ratio (per-repeat range) | '
              f'ratio of fastest repeats | cores busy | page faults / iter | {memory_key} MiB | '
              f'ratio | training MiB | ratio |',
              '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for v in variants:
        if v['skipped'] or v['error']:
            continue
        t, m, r = v['time'], v['memory'], v['ratios']
        time_ratio = ratio_text(r.get('time'))
        if r.get('time_range'):
            time_ratio += f' ({r["time_range"][0]:.2f}-{r["time_range"][1]:.2f})'
        lines.append(
            f'| {v["name"]} | {t["median"]:.3f} | {t["q1"]:.3f}-{t["q3"]:.3f} | '
            f'{t["min"]:.3f}-{t["max"]:.3f} | {time_ratio} | {ratio_text(r.get("time_fastest"))} | '
            f'{t["cores_busy"]:.2f} | {t.get("minor_faults_per_step", 0):,.0f} | '
            f'{m.get("peak_mb", 0):,.0f} | '
            f'{ratio_text(r.get("peak_mb"))} | {m.get("training_mb", 0):,.0f} | '
            f'{ratio_text(r.get("training_mb"))} |')
    notes = [f'- {v["name"]}: not run ({v["skipped"]}).' for v in variants if v['skipped']]
    notes += [f'- {v["name"]}: failed ({v["error"]}).' for v in variants if v['error']]
    lines += ['', 'FLOPs: one image, eval-mode forward, as mmengine counts them (a multiply-add '
              'is one FLOP; the elementwise synthesis of replaced weights is not counted). '
              'Ratios are to the baseline of the same run; the time ratio is of the medians '
              'pooled over repeats, in brackets the range of the per-repeat ratios; the ratio of '
              'fastest repeats compares the quickest process of each (the one least disturbed '
              'by other load). Cores busy: process CPU time / wall time of the timed steps '
              '(below the thread count: the step waited, for other processes or memory). '
              'Page faults: minor page faults of the worker per timed iteration (memory the '
              'allocator gave back to the kernel and touches again; malloc steady keeps freed '
              'memory in the heap, see benchmarks/cost_benchmark.py). '
              + ('Memory: the worker process\'s peak resident set size during the timed steps '
                 '(libraries and weights included); training MiB is that peak minus the '
                 'resident size before the first step.' if settings['device'] != 'cuda' else
                 'Memory: torch.cuda.max_memory_allocated during the timed steps; training MiB '
                 'is that minus the memory allocated before the first step.')]
    if notes:
        lines += [''] + notes
    return '\n'.join(lines)


def plot_benchmark(report: Dict[str, Any], out: str) -> None:
    """Bars of s/iter (with the per-repeat range), peak memory (whole and added by training),
    trainable backbone parameters and FLOPs of every variant relative to the baseline."""
    from matplotlib.figure import Figure
    variants = [v for v in report['variants'] if not v['skipped'] and v['params']]
    backbone = 'backbone' if report['settings']['mode'] == 'backbone' else 'model'
    memory = 'CUDA max allocated' if report['settings']['device'] == 'cuda' else 'peak RSS'
    panels = [('time', 's/iter (median)'), ('peak_mb', memory),
              ('training_mb', f'{memory} added by training'),
              ('trainable_backbone', 'trainable backbone parameters'),
              (f'flops_{backbone}', f'{backbone} FLOPs')]
    figure = Figure(figsize=(3.8 * len(panels), 4.2), constrained_layout=True)
    axes = figure.subplots(1, len(panels))
    names = [v['name'] for v in variants]
    for ax, (key, title) in zip(axes, panels):
        values = [v['ratios'].get(key) or 0.0 for v in variants]
        bars = ax.bar(names, values, color=[f'C{i}' for i in range(len(names))])
        if key == 'time':
            ranges = [v['ratios'].get('time_range') or [value, value]
                      for value, v in zip(values, variants)]
            ax.vlines(names, [low for low, _ in ranges], [high for _, high in ranges],
                      color='black', linewidth=1.5, label='per-repeat range')
            ax.legend(fontsize='small')
        for bar, value in zip(bars, values):
            if value:
                ax.annotate(f'{value:.2f}', (bar.get_x() + bar.get_width() / 2, value),
                            ha='center', va='bottom', fontsize='small')
        ax.axhline(1.0, color='grey', linestyle='--', linewidth=1)
        ax.set_title(f'{title} / baseline')
        ax.tick_params(axis='x', labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment('right')
    settings = report['settings']
    figure.suptitle(f'{settings["config"]} ({settings["mode"]}, batch {settings["batch_size"]} '
                    f'at {settings["shape"][0]}x{settings["shape"][1]}, {settings["device"]}, '
                    f'{settings["threads"]} threads)')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    figure.savefig(out, dpi=100)
