"""What a config's model costs: parameters and FLOPs per backbone stage, training memory and time.

Behind ``tools/analysis/cost_report.py`` and ``TrainingCostHook``:

* ``PeakMemoryMeter``: peak memory between two reads, on CUDA (``max_memory_allocated`` /
  ``max_memory_reserved``) or on CPU (the process's peak resident set size, Linux);
* ``structure_costs`` / ``state_costs`` / ``coefficient_means``: the numbers the hook logs;
* ``synthetic_batch`` / ``SyntheticDataset``: a training batch of the config's framework
  (mmdet, mmseg, mmpretrain) and input size, so costs are measured without a dataset;
* ``cost_report``: a table per backbone stage (blocks, replaced blocks, parameters, trainable
  parameters, forward FLOPs) and, optionally, measured seconds per iteration and peak memory.

Memory is in MiB, as mmengine's own ``memory`` (named ``mb`` there and here).
"""
import copy
import os
import re
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from repl_mm.core import (COEFFICIENTS, ReplError, is_replaced, replaced_blocks,
                          synthesised_numel)
from .params import ParameterCount

MIB = 1024 * 1024
FRAMEWORK_SCOPES = ('mmdet', 'mmseg', 'mmpretrain')


# ---------------------------------------------------------------------------------------- memory
class PeakMemoryMeter:
    """Peak memory since the last ``reset()`` (or read with ``reset=True``), in MiB.

    ``read()`` returns ``{key: MiB}``: ``cuda_peak_allocated_mb`` and ``cuda_peak_reserved_mb``
    for a CUDA device, ``cpu_peak_rss_mb`` for the CPU (the whole process: weights, activations,
    gradients, optimizer state, libraries; dataloader worker processes are not included).
    ``source`` says how it is measured (``'cuda'``, ``'vmhwm'``, ``'sampled'`` or ``None`` where
    nothing can be measured).
    """

    source: Optional[str] = None

    def reset(self) -> None:
        raise NotImplementedError

    def read(self, reset: bool = True) -> Dict[str, int]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop any background sampling."""


class CudaPeakMemory(PeakMemoryMeter):
    """``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` of one device."""

    source = 'cuda'

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def reset(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def read(self, reset: bool = True) -> Dict[str, int]:
        values = {'cuda_peak_allocated_mb': torch.cuda.max_memory_allocated(self.device) // MIB,
                  'cuda_peak_reserved_mb': torch.cuda.max_memory_reserved(self.device) // MIB}
        if reset:
            self.reset()
        return values


class ProcessPeakMemory(PeakMemoryMeter):
    """Peak resident set size of this process (Linux ``/proc``).

    The kernel keeps the peak itself (``VmHWM`` in ``/proc/self/status``), and writing ``5`` to
    ``/proc/self/clear_refs`` resets it to the current size: exact, and free between reads. Where
    that write is not permitted, a background thread samples ``/proc/self/statm`` every
    ``sample_period`` seconds instead (peaks shorter than the period can be missed).
    """

    STATUS = '/proc/self/status'
    CLEAR_REFS = '/proc/self/clear_refs'
    STATM = '/proc/self/statm'

    def __init__(self, sample_period: float = 0.02) -> None:
        self.sample_period = sample_period
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._peak = 0
        self._page_size = os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096
        if not os.path.exists(self.STATUS):
            self.source = None
        elif self._clear_peak():
            self.source = 'vmhwm'
        else:
            self.source = 'sampled'
            self._peak = self._rss()
            self._thread = threading.Thread(target=self._sample, name='repl-mm-rss-sampler',
                                            daemon=True)
            self._thread.start()

    def _clear_peak(self) -> bool:
        try:
            with open(self.CLEAR_REFS, 'w') as file:
                file.write('5')
            return True
        except OSError:
            return False

    def _vmhwm(self) -> int:
        with open(self.STATUS) as file:
            match = re.search(r'^VmHWM:\s+(\d+)\s+kB', file.read(), re.MULTILINE)
        return int(match.group(1)) * 1024 if match else 0

    def _rss(self, statm: Optional[int] = None) -> int:
        if statm is None:
            with open(self.STATM, 'rb') as file:
                text = file.read()
        else:
            text = os.pread(statm, 128, 0)
        return int(text.split()[1]) * self._page_size

    def _sample(self) -> None:
        statm = os.open(self.STATM, os.O_RDONLY)  # kept open: one pread per sample
        try:
            while not self._stop.wait(self.sample_period):
                rss = self._rss(statm)
                with self._lock:
                    self._peak = max(self._peak, rss)
        finally:
            os.close(statm)

    def reset(self) -> None:
        if self.source == 'vmhwm':
            self._clear_peak()
        elif self.source == 'sampled':
            with self._lock:
                self._peak = self._rss()

    def read(self, reset: bool = True) -> Dict[str, int]:
        if self.source is None:
            return {}
        if self.source == 'vmhwm':
            peak = self._vmhwm()
        else:
            with self._lock:
                peak = self._peak = max(self._peak, self._rss())
        if reset:
            self.reset()
        return {'cpu_peak_rss_mb': peak // MIB}

    def current_mb(self) -> int:
        """The resident set size now."""
        return self._rss() // MIB if self.source else 0

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None


def peak_memory_meter(device: torch.device, sample_period: float = 0.02) -> PeakMemoryMeter:
    """The meter for the device a model trains on."""
    if torch.device(device).type == 'cuda':
        return CudaPeakMemory(torch.device(device))
    return ProcessPeakMemory(sample_period)


# ------------------------------------------------------------------------- what the hook logs
def structure_costs(model: nn.Module) -> Dict[str, int]:
    """``params_synthesised`` (values computed from neighbours, not stored) and
    ``replaced_blocks``: fixed once the model is built."""
    return {'params_synthesised': synthesised_numel(model),
            'replaced_blocks': len(replaced_blocks(model))}


def state_costs(model: nn.Module, optimizers: Iterable[torch.optim.Optimizer] = ()
                ) -> Dict[str, int]:
    """Trainable and frozen parameter values, gradient and optimizer-state bytes: they change
    when parameters are frozen or unfrozen and after the first optimizer step.

    ``grad_bytes`` is what backward allocates for the ``.grad`` of every trainable parameter
    (numel x element size), computed from the parameters: mmengine's optimizer wrapper frees the
    gradients (``zero_grad``) before any hook sees them. ``optimizer_state_bytes`` sums the tensors
    the optimizers hold (momentum, Adam moments, ...), 0 before the first step.
    """
    trainable = frozen = grad_bytes = 0
    for param in model.parameters():
        if param.requires_grad:
            trainable += param.numel()
            grad_bytes += param.numel() * param.element_size()
        else:
            frozen += param.numel()
    state_bytes = sum(value.numel() * value.element_size()
                      for optimizer in optimizers for state in optimizer.state.values()
                      for value in state.values() if isinstance(value, torch.Tensor))
    return {'params_trainable': trainable, 'params_frozen': frozen, 'grad_bytes': grad_bytes,
            'optimizer_state_bytes': state_bytes}


def coefficient_means(blocks: Sequence[Tuple[str, nn.Module]]) -> Dict[str, Tuple[float, float]]:
    """``{block path: (mean of a, mean of b)}`` over all coefficient values of each block.

    Args:
        blocks: ``replaced_blocks(model)``; one device-to-host copy for all of them.
    """
    if not blocks:
        return {}
    with torch.no_grad():
        means = torch.stack([
            torch.stack([torch.cat([c[row].reshape(-1).float()
                                    for c in getattr(block, COEFFICIENTS).values()]).mean()
                         for row in (0, 1)]) for _, block in blocks]).tolist()
    return {path: (a, b) for (path, _), (a, b) in zip(blocks, means)}


# ------------------------------------------------------------------------------ synthetic data
def framework_of(cfg) -> str:
    """``'mmdet'``, ``'mmseg'`` or ``'mmpretrain'``, from the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in FRAMEWORK_SCOPES:
        raise ReplError(f'default_scope={scope!r}: cost tools serve configs of '
                        f'{", ".join(FRAMEWORK_SCOPES)} (set default_scope in the config).')
    return scope


def _dataset_cfg(loader_cfg) -> dict:
    dataset = (loader_cfg or {}).get('dataset', {}) or {}
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    return dataset


def _pair(value) -> Tuple[int, int]:
    """``int`` or ``(w, h)`` (mmcv's order) -> ``(h, w)``."""
    if isinstance(value, (int, float)):
        return int(value), int(value)
    return int(value[1]), int(value[0])


def input_shape(cfg) -> Tuple[int, int]:
    """``(H, W)`` of the model's input, read from the test pipeline.

    The last of ``Resize`` (``scale``; with ``keep_ratio`` it bounds the image), ``ResizeEdge``
    (a square of the edge) and ``CenterCrop`` (``crop_size``) wins; a pipeline without any (e.g.
    CIFAR's) falls back on the dataset type (CIFAR 32, MNIST 28).
    """
    dataset = _dataset_cfg(cfg.get('test_dataloader') or cfg.get('val_dataloader'))
    pipeline = dataset.get('pipeline') or cfg.get('test_pipeline') or []
    shape = None
    for transform in pipeline:
        kind = str(transform.get('type', '')).rpartition('.')[2]
        if kind == 'Resize' and transform.get('scale') is not None:
            shape = _pair(transform['scale'])
        elif kind == 'ResizeEdge':
            shape = _pair(transform['scale'])
        elif kind == 'CenterCrop':
            shape = _pair(transform['crop_size'])
    if shape is not None:
        return shape
    dataset_type = str(dataset.get('type', ''))
    for name, size in (('CIFAR', 32), ('MNIST', 28)):
        if name in dataset_type.upper():
            return size, size
    raise ReplError('Cannot read the input size from the config\'s test pipeline (no Resize, '
                    'ResizeEdge or CenterCrop); pass it with --shape H W.')


def _det_sample(shape: Tuple[int, int], generator: torch.Generator):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    height, width = shape
    boxes = []
    for _ in range(3):  # three boxes of 1/4 to 1/2 of the image
        w, h = (int(s * (0.25 + 0.25 * torch.rand(1, generator=generator).item()))
                for s in (width, height))
        x0 = int((width - w) * torch.rand(1, generator=generator).item())
        y0 = int((height - h) * torch.rand(1, generator=generator).item())
        boxes.append((x0, y0, x0 + w, y0 + h))
    masks = np.zeros((len(boxes), height, width), dtype=np.uint8)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes):
        mask[y0:y1, x0:x1] = 1
    sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, scale_factor=(1., 1.),
                                         flip=False, flip_direction=None))
    sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                       labels=torch.zeros(len(boxes), dtype=torch.long),
                                       masks=BitmapMasks(masks, height, width))
    return sample


def _seg_sample(shape: Tuple[int, int], generator: torch.Generator):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                         scale_factor=(1., 1.), flip=False))
    labels = torch.randint(0, 2, (1, *shape), generator=generator)
    sample.gt_sem_seg = PixelData(data=labels)
    return sample


def _cls_sample(shape: Tuple[int, int], generator: torch.Generator):
    from mmpretrain.structures import DataSample
    return DataSample(metainfo=dict(img_shape=shape, ori_shape=shape)).set_gt_label(0)


_SAMPLES = {'mmdet': _det_sample, 'mmseg': _seg_sample, 'mmpretrain': _cls_sample}


def synthetic_item(framework: str, shape: Tuple[int, int], seed: int = 0) -> Dict[str, Any]:
    """One dataset item as the framework's packing transform makes it: a random ``uint8``
    ``(3, H, W)`` image and a data sample with targets (3 boxes with masks for mmdet, a two-class
    label map for mmseg, label 0 for mmpretrain)."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, *shape), dtype=torch.uint8, generator=generator)
    return dict(inputs=image, data_samples=_SAMPLES[framework](tuple(shape), generator))


def synthetic_batch(framework: str, shape: Tuple[int, int], batch_size: int) -> Dict[str, list]:
    """A collated batch of ``synthetic_item``s, ready for ``model.train_step``."""
    items = [synthetic_item(framework, shape, seed) for seed in range(batch_size)]
    return dict(inputs=[item['inputs'] for item in items],
                data_samples=[item['data_samples'] for item in items])


class SyntheticDataset(torch.utils.data.Dataset):
    """``length`` synthetic items for mmengine's Runner (collate with ``pseudo_collate``)."""

    def __init__(self, framework: str, shape: Tuple[int, int], length: int) -> None:
        self.items = [synthetic_item(framework, shape, seed) for seed in range(length)]
        self.metainfo = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.items[index]


def synthetic_runner(cfg, work_dir: str, max_iters: int, shape: Optional[Tuple[int, int]] = None,
                     batch_size: Optional[int] = None, log_interval: int = 1,
                     custom_hooks: Sequence = (), checkpoint: bool = False):
    """An mmengine ``Runner`` that trains the config's model and optimizer on synthetic data.

    Iteration-based for ``max_iters``, logging every ``log_interval`` iterations (text log and
    ``<work_dir>/<timestamp>/vis_data/scalars.json``); with ``checkpoint``, it saves
    ``<work_dir>/iter_<max_iters>.pth``. Everything else is mmengine's default.
    """
    from mmengine.dataset import InfiniteSampler, pseudo_collate
    from mmengine.runner import Runner
    framework = framework_of(cfg)
    shape = tuple(shape) if shape else input_shape(cfg)
    batch_size = batch_size or (cfg.get('train_dataloader') or {}).get('batch_size', 1)
    dataset = SyntheticDataset(framework, shape, 2 * batch_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=pseudo_collate,
                                         sampler=InfiniteSampler(dataset, shuffle=False))
    default_hooks = dict(logger=dict(type='LoggerHook', interval=log_interval),
                         checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                         interval=max_iters if checkpoint else -1))
    return Runner(model=copy.deepcopy(cfg.model), work_dir=work_dir, train_dataloader=loader,
                  optim_wrapper=copy.deepcopy(cfg.optim_wrapper),
                  train_cfg=dict(by_epoch=False, max_iters=max_iters),
                  default_hooks=default_hooks, custom_hooks=list(custom_hooks),
                  log_processor=dict(by_epoch=False), default_scope=framework,
                  experiment_name=f'{os.path.basename(os.path.abspath(work_dir))}_'
                                  f'{uuid.uuid4().hex[:8]}')


# ------------------------------------------------------------------------------- the report
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


def forward_flops(model: nn.Module, framework: str, shape: Tuple[int, int]
                  ) -> Tuple[Dict[str, int], Dict[str, int]]:
    """FLOPs of one eval-mode forward of one image, by module name (``''`` is the model), and
    the operators mmengine does not count (elementwise ops such as the synthesis itself)."""
    from mmengine.analysis import FlopAnalyzer
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            data = model.data_preprocessor(synthetic_batch(framework, shape, 1), False)
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
    """Run ``warmup + iters`` training steps on ``batch``; time the last ``iters``.

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
    durations = []
    model.train()
    with torch.no_grad():
        batch_input_shape = list(model.data_preprocessor(batch, True)['inputs'].shape)
    try:
        for step in range(warmup + iters):
            if step == warmup:
                meter.reset()
            start = time.perf_counter()
            model.train_step(batch, optim_wrapper)
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            durations.append(time.perf_counter() - start)
            if bar is not None:
                bar.update()
        memory = meter.read()
    finally:
        meter.close()
        if bar is not None:
            sys.stderr.write('\n')
    timed = durations[warmup:]
    result = dict(device=str(device), iters=iters, warmup=warmup,
                  batch_input_shape=batch_input_shape,
                  seconds_per_iter=sum(timed) / len(timed), seconds_min=min(timed),
                  memory_source=meter.source, **memory)
    if before is not None and 'cpu_peak_rss_mb' in memory:
        result.update(rss_before_mb=before, training_mb=memory['cpu_peak_rss_mb'] - before)
    return result


def build_model(cfg) -> nn.Module:
    """The config's model, under its framework's default scope (weights not initialised: a
    pretrained ``init_cfg`` would need the network)."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(framework_of(cfg))
    return MODELS.build(cfg.model)


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
    flops, unsupported = forward_flops(model, framework, shape)
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
            model, optim_wrapper, synthetic_batch(framework, shape, batch_size), iters))
    return report


def _si(value: int) -> str:
    for unit, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(value) >= scale:
            return f'{value / scale:.2f}{unit}'
    return str(value)


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
                     f'{part.trainable:,} | {part.synthesised:,} | {_si(part.flops)} |')
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
