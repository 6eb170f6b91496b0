"""What a config's model costs: parameters and FLOPs per backbone stage and, measured, seconds
per training iteration and peak memory (``tools/analysis/cost_report.py``)."""
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from repl_core import ReplError, is_replaced
from repl_mm.engine.memory import ProcessPeakMemory, peak_memory_meter
from .params import ParameterCount
from .step_timing import device_sync, timed_steps
from .synthetic import (framework_of, input_channels, input_shape, model_cfg_of,
                        synthetic_batch)


@dataclass
class PartCost:
    """One row: a backbone stage, the rest of the backbone, another part of the model, a total.

    ``replaced`` lists the indices of the replaced blocks of a stage (``'stage.index'`` for the
    whole backbone); ``flops`` is the forward FLOPs of one image as mmengine counts them (a
    multiply-add is one FLOP).
    """

    name: str
    parameters: int
    trainable: int
    synthesised: int
    flops: int
    blocks: Optional[int] = None
    replaced: Optional[List[Union[int, str]]] = None


@dataclass
class CostReport:
    """What ``cost_report`` found; ``to_dict()`` is the ``--format json`` output.

    ``input_shape`` is ``(H, W)``; ``training`` holds ``measure_training``'s result (and
    ``batch_size``) when measured; ``unsupported_ops`` counts the operators the FLOP count left
    out.
    """

    config: str
    framework: str
    model: str
    backbone: Optional[str]
    repl: Optional[dict]
    input_shape: Tuple[int, int]
    parts: List[PartCost]
    training: Optional[Dict[str, Any]] = None
    unsupported_ops: Dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _is_block(module: nn.Module) -> bool:
    """At least two conv / linear layers: a block, not a layer (``ConvModule``, a stem)."""
    return sum(isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))
               for m in module.modules()) >= 2


def _is_block_container(module: nn.Module) -> bool:
    """A ``Sequential`` / ``ModuleList`` of blocks of one class that hold no such container."""
    if not isinstance(module, (nn.Sequential, nn.ModuleList)) or len(module) == 0:
        return False
    return (len({type(block) for block in module}) == 1 and all(map(_is_block, module))
            and not any(_is_block_container(m) for block in module for m in block.modules()))


def backbone_stages(backbone: nn.Module) -> List[Tuple[str, str]]:
    """``(stage name, path of its block container)`` of every stage of ``backbone``.

    A RepL backbone declares them (``repl_stages``); a plain ResNet has ``res_layers``; any other
    backbone's stages are guessed: its outermost containers (``nn.Sequential`` /
    ``nn.ModuleList``) of blocks of one class (modules with at least two conv / linear layers)
    that hold no such container themselves (Swin ``stages.i.blocks``, ViT ``layers``, ConvNeXt
    ``stages.i``, MobileNetV2 ``layer1..7``).
    """
    if callable(getattr(backbone, 'repl_stages', None)):
        return list(backbone.repl_stages())
    if getattr(backbone, 'res_layers', None):
        return [(name, name) for name in backbone.res_layers]
    stages, covered = [], []
    for path, module in backbone.named_modules():
        if path and not any(path.startswith(f'{c}.') for c in covered) and \
                _is_block_container(module):
            stages.append((path, path))
            covered.append(path)
    return stages


def _part(name: str, module: nn.Module, flops: int, **extra) -> PartCost:
    count = ParameterCount.of(module)
    return PartCost(name=name, parameters=count.parameters, trainable=count.trainable,
                    synthesised=count.synthesised, flops=flops, **extra)


def _minus(name: str, total: PartCost, parts: Sequence[PartCost]) -> PartCost:
    return PartCost(name=name, **{key: getattr(total, key) - sum(getattr(p, key) for p in parts)
                                  for key in ('parameters', 'trainable', 'synthesised', 'flops')})


def part_costs(model: nn.Module, flops: Dict[str, int]) -> List[PartCost]:
    """Rows: each backbone stage, the rest of the backbone (stem), the backbone, every other
    top-level part of the model (neck, heads), the model.

    Args:
        flops: forward FLOPs by module name (``FlopAnalyzer.by_module()``).
    """
    parts = []
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, nn.Module):
        stages = []
        for name, path in backbone_stages(backbone):
            container = backbone.get_submodule(path)
            stages.append(_part(f'backbone.{name}', container, flops.get(f'backbone.{path}', 0),
                                blocks=len(container),
                                replaced=[i for i, b in enumerate(container) if is_replaced(b)]))
        total = _part('backbone', backbone, flops.get('backbone', 0),
                      blocks=sum(s.blocks for s in stages),
                      replaced=[f'{s.name[len("backbone."):]}.{i}' for s in stages
                                for i in s.replaced])
        parts += [_minus('backbone (stem, other)', total, stages), *stages, total]
    for name, child in model.named_children():
        if child is backbone or name == 'data_preprocessor':
            continue
        part = _part(name, child, flops.get(name, 0))
        if part.parameters or part.flops:
            parts.append(part)
    parts.append(_part('model', model, flops.get('', 0)))
    return parts


class _TensorForward(nn.Module):
    """``model(inputs, data_samples, mode='tensor')`` as a one-input module for tracing."""

    def __init__(self, model: nn.Module, data_samples: list) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: torch.Tensor):
        return self.model(inputs, self.data_samples, mode='tensor')


def forward_flops(model: nn.Module, framework: str, shape: Tuple[int, int],
                  channels: int = 3) -> Tuple[Dict[str, int], Dict[str, int]]:
    """FLOPs of one eval-mode forward of one image, by module name (``''`` is the model), and
    the operators mmengine does not count (elementwise ops such as the synthesis itself)."""
    from mmengine.analysis import FlopAnalyzer
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            data = model.data_preprocessor(synthetic_batch(framework, shape, 1, channels), False)
        analyzer = FlopAnalyzer(_TensorForward(model, data['data_samples']),
                                (data['inputs'].to(device), ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.tracer_warnings('none')
        by_module = {name[len('model.'):] if name.startswith('model.') else
                     ('' if name == 'model' else None): value
                     for name, value in analyzer.by_module().items()}
        by_module.pop(None, None)
        return by_module, dict(analyzer.unsupported_ops())
    finally:
        model.train(was_training)


def measure_training(model: nn.Module, optim_wrapper, batch: Dict[str, list], iters: int,
                     warmup: int = 1, progress: bool = True) -> Dict[str, Any]:
    """Run ``warmup + iters`` training steps on ``batch`` (``step_timing.timed_steps``); time the
    last ``iters``.

    Returns ``seconds_per_iter`` (mean), ``seconds_min``, ``batch_input_shape`` (what the model
    runs on after its data preprocessor, e.g. mmseg pads training inputs to its ``size``) and
    the peak memory of the timed steps (``PeakMemoryMeter`` keys); on CPU also
    ``rss_before_mb`` (the process with the model built, before the first step) and
    ``training_mb`` (peak minus that: gradients, optimizer state, activations).
    """
    from mmengine.utils import ProgressBar
    device = next(model.parameters()).device
    meter = peak_memory_meter(device)
    before = meter.current_mb() if isinstance(meter, ProcessPeakMemory) else None
    bar = ProgressBar(warmup + iters, file=sys.stderr) if progress else None
    model.train()
    with torch.no_grad():
        batch_input_shape = list(model.data_preprocessor(batch, True)['inputs'].shape)
    try:
        times = timed_steps(lambda: model.train_step(batch, optim_wrapper), iters, warmup,
                            sync=device_sync(device), before_timed=meter.reset,
                            after_step=None if bar is None else lambda *_: bar.update())
        memory = meter.read()
    finally:
        meter.close()
        if bar is not None:
            sys.stderr.write('\n')
    result = dict(device=str(device), iters=iters, warmup=warmup,
                  batch_input_shape=batch_input_shape,
                  seconds_per_iter=times.mean, seconds_min=times.min,
                  memory_source=meter.source, **memory)
    if before is not None and 'cpu_peak_rss_mb' in memory:
        result.update(rss_before_mb=before, training_mb=memory['cpu_peak_rss_mb'] - before)
    return result


def build_model(cfg) -> nn.Module:
    """The config's model, under its framework's default scope (weights not initialised: a
    pretrained ``init_cfg`` would need the network)."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(framework_of(cfg))
    return MODELS.build(model_cfg_of(cfg))


def cost_report(cfg, config_name: str = '', measure: bool = False, device: str = 'cpu',
                iters: int = 5, shape: Optional[Tuple[int, int]] = None,
                batch_size: Optional[int] = None) -> CostReport:
    """Build the config's model and report its costs (see the module docstring).

    Args:
        measure: also run training steps on a synthetic batch and measure them.
        device: ``'cpu'`` or ``'cuda'``.
        shape: ``(H, W)``; default ``input_shape(cfg)``.
        batch_size: of the measured steps; default the config's training batch size.
    """
    from mmengine.optim import build_optim_wrapper
    framework = framework_of(cfg)
    shape = tuple(shape) if shape else input_shape(cfg)
    if device == 'cuda' and not torch.cuda.is_available():
        raise ReplError('--device cuda: CUDA is not available here; use --device cpu.')
    model = build_model(cfg).to(device)
    flops, unsupported = forward_flops(model, framework, shape, input_channels(cfg))
    backbone = getattr(model, 'backbone', None)
    report = CostReport(
        config=config_name, framework=framework, model=type(model).__name__,
        backbone=type(backbone).__name__ if backbone is not None else None,
        repl=backbone.repl_meta() if callable(getattr(backbone, 'repl_meta', None)) else None,
        input_shape=shape, parts=part_costs(model, flops), unsupported_ops=unsupported)
    if measure:
        batch_size = batch_size or (cfg.get('train_dataloader') or {}).get('batch_size', 1)
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        report.training = dict(batch_size=batch_size, **measure_training(
            model, optim_wrapper,
            synthetic_batch(framework, shape, batch_size, input_channels(cfg)), iters))
    return report


def si_number(value: Optional[float]) -> str:
    """``57650000000`` -> ``'57.65G'``; ``''`` for ``None``."""
    if value is None:
        return ''
    for unit, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(value) >= scale:
            return f'{value / scale:.2f}{unit}'
    return str(round(value))


def ratio_text(value: Optional[float], digits: int = 2) -> str:
    """``1.2345`` -> ``'1.23x'`` (``digits`` decimals); ``''`` for ``None``."""
    return '' if value is None else f'{value:.{digits}f}x'


def format_markdown(report: CostReport) -> str:
    """The report as a markdown table with a heading and, if measured, a line of measurements."""
    h, w = report.input_shape
    repl = (f' ({report.repl["kind"]}, replaced: '
            f'{", ".join(f"{s}{i}" for s, i in report.repl["plan"].items() if i) or "none"})'
            if report.repl else '')
    lines = [f'### {report.config or report.model}: {report.model}, {report.backbone}{repl}, '
             f'input 3x{h}x{w}', '',
             '| part | blocks | replaced | parameters | trainable | synthesised | FLOPs |',
             '|---|---:|---|---:|---:|---:|---:|']
    for part in report.parts:
        blocks = '' if part.blocks is None else str(part.blocks)
        replaced = '' if part.replaced is None else str(len(part.replaced))
        if part.replaced and all(isinstance(i, int) for i in part.replaced):
            replaced += f': {", ".join(map(str, part.replaced))}'
        lines.append(f'| {part.name} | {blocks} | {replaced} | {part.parameters:,} | '
                     f'{part.trainable:,} | {part.synthesised:,} | {si_number(part.flops)} |')
    lines += ['', 'FLOPs: one image, eval-mode forward, as mmengine counts them (a multiply-add '
              'is one FLOP; elementwise operators, such as the synthesis of replaced weights, '
              'are not counted).']
    training = report.training
    if training:
        memory = ', '.join(f'{key[:-3]} {value:,} MiB' for key, value in training.items()
                           if key.endswith('_mb'))
        shape = 'x'.join(map(str, training['batch_input_shape']))
        lines += ['', f'Training step ({training["device"]}, input batch {shape}, mean of '
                  f'{training["iters"]} after {training["warmup"]} warm-up): '
                  f'{training["seconds_per_iter"]:.3f} s/iter (min '
                  f'{training["seconds_min"]:.3f}); {memory or "memory not measurable here"}.']
    return '\n'.join(lines)
