"""Convert a pretrained plain checkpoint into a RepL one: behind ``tools/convert.py``.

``convert_checkpoint(cfg, plain_checkpoint, out_dir, name)`` builds the config's RepL model and
its plain twin, loads the plain checkpoint (a whole model's, or a backbone's alone, as
``init_cfg=Pretrained`` takes), starts the replaced blocks as ``repl.warm_start`` says
(``repl_core.warm_start``; ``'activations'`` on batches of the config's training data), and
writes ``<out_dir>/<name>_repl.pth`` (``state_dict`` and ``meta``: the plan and the conversion
report) and ``<out_dir>/<name>_repl.py`` (the config with the plan written out and
``load_from`` set to that checkpoint). With ``repl.blocks='auto'`` it first chooses the plan:
every block that may be replaced is tried alone, and the ones whose replacement changes the
backbone's output least are taken, never two adjacent, until ``repl.budget`` of the backbone's
parameters are synthesised.
"""
import copy
import os
import re
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import MODELS, init_default_scope
from torch import Tensor, nn

from repl_core import CheckpointMismatchError, PlanError
from repl_core.plan import auto_candidates, choose_within_budget
from repl_core.warm_start import BlockConversion, convert_from_plain
from repl_mm.models import plain_model_cfg, repl_settings_of
from .checkpoint_files import read_checkpoint, replaced_blocks_in, state_dict_in
from .data_check import DataNotFoundError
from .explain_errors import explain_build_errors
from .fold_checkpoint import primitive


@dataclass
class ConversionResult:
    """What ``convert_checkpoint`` wrote and measured."""

    checkpoint: str
    config: str
    plan: Dict[str, List[int]]
    warm_start: Optional[str]
    blocks: List[BlockConversion]
    output_error: Optional[float]  # of the backbone's last output, against the plain one
    loaded: Dict[str, int] = field(default_factory=dict)
    ranking: List[Tuple[str, float]] = field(default_factory=list)  # blocks='auto': cost each


def read_plain_state_dict(path: str) -> Dict[str, Tensor]:
    """The tensors of a plain checkpoint file: a Runner checkpoint, ``{'state_dict': ...}`` or a
    bare state dict. A RepL checkpoint is refused: converting it would throw its trained
    coefficients away and start the replaced blocks afresh."""
    state = state_dict_in(read_checkpoint(path), path)
    replaced = replaced_blocks_in(state)
    if replaced:
        raise CheckpointMismatchError(
            f'{path} is a RepL checkpoint (trained coefficients for {", ".join(replaced)}), not a '
            f'plain one: tools/convert.py starts a RepL model from a plain (pretrained) network '
            f'and would throw those coefficients away. To train on from it, set load_from (or '
            f'--resume) in its own config; for the plain network it computes, fold it: '
            f'python tools/fold.py CONFIG {path} OUT_DIR.', path=path, replaced_blocks=replaced)
    return state


def _block_container(key: str) -> Optional[str]:
    """``'layer1.3.conv1.weight'`` -> ``'layer1.'``: what holds the first numbered block of a
    state-dict key (``'layers.'``, ``'stages.'``), or ``None``."""
    match = re.match(r'(.+?\.)\d+\.', key)
    return match.group(1) if match else None


def _load_plain(model: nn.Module, state: Dict[str, Tensor], path: str) -> Dict[str, int]:
    """Load a whole model's or a backbone's state dict into the plain ``model``: every backbone
    parameter must be in it and fit; tensors outside the backbone that do not fit (another
    number of classes) are skipped."""
    whole = any(k.startswith('backbone.') for k in state)
    target = model if whole else model.backbone
    prefix = 'backbone.' if whole else ''
    backbone = [prefix + k for k, _ in model.backbone.named_parameters()]
    if not any(k in state for k in backbone):
        raise CheckpointMismatchError(
            f'{path} holds none of the backbone\'s tensors (keys such as {list(state)[:3]}): is '
            f'it a checkpoint of {type(model.backbone).__name__}?', path=path)
    own = target.state_dict()
    skipped = [k for k, v in state.items() if whole and not k.startswith('backbone.')
               and k in own and v.shape != own[k].shape]
    state = {k: v for k, v in state.items() if k not in skipped}
    fix = ('Give a checkpoint of the same architecture and depth (the plain twin of the RepL '
           'backbone).')
    try:
        result = target.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a backbone tensor of another shape
        raise CheckpointMismatchError(f'{path} does not fit {type(model.backbone).__name__} as '
                                      f'the config builds it: {error} {fix}', path=path) from error
    missing = [k for k in result.missing_keys if k in backbone]
    containers = {_block_container(k) for k in backbone} - {None}
    extra = [k for k in result.unexpected_keys if _block_container(k) in containers]
    if missing or extra:
        raise CheckpointMismatchError(
            f'{path} is not a checkpoint of {type(model.backbone).__name__} as the config builds '
            f'it: ' + '; '.join(part for part in (
                f'{len(missing)} of its parameters are missing, e.g. {missing[:3]}'
                if missing else '',
                f'{len(extra)} tensors of blocks it does not have, e.g. {extra[:3]} (another '
                f'depth?)' if extra else '') if part) + f'. {fix}',
            path=path, missing=missing, extra=extra)
    return dict(loaded=len(state) - len(result.unexpected_keys), skipped=len(skipped),
                unexpected=len(result.unexpected_keys))


def training_images(cfg: Config, model: nn.Module, batches: int) -> List[Tensor]:
    """``batches`` batches of the config's training data, as the backbone receives them."""
    from mmengine.runner import Runner

    from .data_check import check_data_paths
    check_data_paths(cfg, ('train', ))
    loader = Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader))
    images = []
    with torch.no_grad():
        for batch in loader:
            images.append(model.data_preprocessor(batch, False)['inputs'])
            if len(images) == batches:
                break
    return images


def _last_output(backbone: nn.Module, images: List[Tensor]) -> List[Tensor]:
    backbone.eval()
    with torch.no_grad():
        outputs = [backbone(x) for x in images]
    return [o if torch.is_tensor(o) else o[-1] for o in outputs]


def _relative_error(outputs: List[Tensor], references: List[Tensor]) -> float:
    error = sum((o - r).float().square().sum().item() for o, r in zip(outputs, references))
    norm = sum(r.float().square().sum().item() for r in references)
    return (error / max(norm, 1e-30)) ** 0.5


def choose_auto_plan(backbone_cfg: dict, plain_backbone: nn.Module, images: List[Tensor],
                     budget: float, steps: int) -> Tuple[dict, List[Tuple[str, float]]]:
    """Measure every candidate block of the auto plan (``repl_core.plan.auto_candidates``) by
    the backbone's output error with it replaced alone (and started as ``warm_start`` says), then
    choose within ``budget`` (``repl_core.plan.choose_within_budget``).

    Args:
        backbone_cfg: the backbone's config, its ``repl`` with ``blocks='auto'``.
        budget: the checked ``repl.budget`` (``ReplacementConfig.budget``).

    Returns:
        The backbone's ``repl`` with the chosen plan written out (and no budget), and every
        candidate with its cost, cheapest first.
    """
    repl = dict(backbone_cfg['repl'], budget=None)
    references = _last_output(plain_backbone, images)
    total = sum(p.numel() for p in plain_backbone.parameters())
    probe = MODELS.build(dict(backbone_cfg, repl=dict(repl, blocks={}),
                              init_cfg=None))  # its stages and frozen blocks, nothing replaced
    stages = [(name, probe.get_submodule(path)) for name, path in probe.repl_stages()]
    costs = []
    for stage, index in auto_candidates(stages, probe.repl_frozen_blocks()):
        repl_cfg = dict(repl, blocks={stage: [index]})
        try:
            backbone = MODELS.build(dict(backbone_cfg, repl=repl_cfg, init_cfg=None))
        except PlanError:
            continue  # e.g. a block without a counterpart in a neighbour
        convert_from_plain(plain_backbone, backbone, images, steps,
                           warm_start=backbone.repl_config.warm_start)
        saved = total - sum(p.numel() for p in backbone.parameters())
        costs.append(((stage, index), _relative_error(_last_output(backbone, images),
                                                      references), saved))
    plan, saved = choose_within_budget(costs, [(name, len(blocks)) for name, blocks in stages],
                                       budget, total)
    if saved < budget * total:
        print_log(f'RepL auto plan: the candidate blocks synthesise only {saved / total:.1%} of '
                  f'the backbone, less than the budget {budget:.0%}; all of them are replaced.',
                  logger='current', level=30)
    return dict(repl, blocks=plan), [(f'{stage}[{i}]', cost) for (stage, i), cost, _ in
                                     sorted(costs, key=lambda c: c[1])]


def convert_checkpoint(cfg: Config, plain_checkpoint: str, out_dir: str, name: str,
                       batches: int = 4, steps: int = 150) -> ConversionResult:
    """Convert ``plain_checkpoint`` for the RepL model of ``cfg``; see the module docstring."""
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    with explain_build_errors(cfg.filename):
        model_cfg = copy.deepcopy(cfg.model)
        if model_cfg.get('data_preprocessor') is None and \
                cfg.get('data_preprocessor') is not None:
            model_cfg['data_preprocessor'] = copy.deepcopy(cfg.data_preprocessor)
        model_cfg['backbone']['init_cfg'] = None
        model_cfg.pop('pretrained', None)
        plain = MODELS.build(plain_model_cfg(model_cfg))
        settings = repl_settings_of(model_cfg['backbone'])
    loaded = _load_plain(plain, read_plain_state_dict(plain_checkpoint), plain_checkpoint)
    try:
        images = (training_images(cfg, plain, batches)
                  if settings.needs_training_data or batches else [])
    except DataNotFoundError:
        if settings.needs_training_data:
            raise
        images = []  # the output errors are not measured
    ranking = []
    if settings.blocks == 'auto':
        model_cfg['backbone']['repl'], ranking = choose_auto_plan(
            model_cfg['backbone'], plain.backbone, images, settings.budget, steps)
    with explain_build_errors(cfg.filename):
        model = MODELS.build(model_cfg)
    model.load_state_dict({k: v for k, v in plain.state_dict().items()
                           if not k.startswith('backbone.')}, strict=False)
    blocks = convert_from_plain(plain.backbone, model.backbone, images, steps,
                                warm_start=model.backbone.repl_config.warm_start)
    error = (_relative_error(_last_output(model.backbone, images),
                             _last_output(plain.backbone, images)) if images else None)
    os.makedirs(out_dir, exist_ok=True)
    checkpoint = osp.abspath(osp.join(out_dir, f'{name}_repl.pth'))
    config = osp.join(out_dir, f'{name}_repl.py')
    plan = model.backbone.repl_plan.to_dict()
    report = dict(warm_start=model.backbone.repl_config.warm_start, output_error=error,
                  blocks=[asdict(b) for b in blocks], ranking=ranking, loaded=loaded)
    torch.save({'state_dict': model.state_dict(),
                'meta': dict(repl={'backbone': model.backbone.repl_meta()},
                             repl_conversion=primitive(report))}, checkpoint)
    with open(config, 'w') as file:
        file.write(f'_base_ = {osp.abspath(cfg.filename)!r}\n'
                   f'model = dict(backbone=dict(init_cfg=None, repl=dict(blocks={plan!r}'
                   f'{", budget=None" if ranking else ""})))\n'
                   f'load_from = {checkpoint!r}\n')
    return ConversionResult(checkpoint, config, plan, report['warm_start'], blocks, error,
                            loaded, ranking)
