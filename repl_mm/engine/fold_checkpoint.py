"""Fold a RepL checkpoint into a plain one that stock mmdet / mmseg / mmpretrain can run.

Behind ``tools/fold.py``. ``fold_checkpoint`` writes ``<out_dir>/<config name>_folded.pth``:
``{'state_dict', 'meta'}`` with every replaced block's synthesised weights materialised as the plain
block's own, holding only tensors and primitive types (it loads with
``torch.load(weights_only=True)``, so with stock mmengine under torch >= 2.6), and
``<out_dir>/<config name>_folded.py``: the same config with the plain backbone (``RepLResNet`` ->
``ResNet``, no ``repl``), without repl-mm's ``custom_imports`` and hooks. The folded backbone is
checked against the RepL one (same outputs) before anything is written.

Fused kind only: a light surrogate folds into a small module of repl-mm, not into the plain block
(see ``repl_core.fold``), so it has no stock config.
"""
import copy
import os
import os.path as osp
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Set, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import MODELS, Registry, init_default_scope

from repl_core import COEFFICIENTS, ReplError, fold_replaced_blocks
from repl_mm.models import plain_model_cfg, repl_settings_of
from repl_mm.version import __version__
from .checkpoint_files import (load_state_strictly, read_checkpoint, replaced_blocks_in,
                               state_dict_in)
from .explain_errors import explain_build_errors

_DROP = object()


def primitive(value: Any) -> Any:
    """``value`` with only str / int / float / bool / None / list / tuple / dict, or ``_DROP``."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        items = [primitive(v) for v in value]
        return _DROP if any(v is _DROP for v in items) else type(value)(items)
    if isinstance(value, dict):
        items = {k: primitive(v) for k, v in value.items() if isinstance(k, (str, int))}
        return {k: v for k, v in items.items() if v is not _DROP}
    return _DROP


def repl_mm_types() -> Set[str]:
    """Names of the classes repl-mm registers, in every registry of every framework."""
    import mmengine.registry as root
    stack = [r for r in vars(root).values() if isinstance(r, Registry)]
    names = set()
    while stack:
        registry = stack.pop()
        names |= {name for name, cls in registry.module_dict.items()
                  if getattr(cls, '__module__', '').startswith('repl_mm')}
        stack.extend(registry.children.values())
    return names


def _types(value: Any, path: str = '') -> List[Tuple[str, str]]:
    """``(config path, type)`` of every ``type=...`` in a config tree."""
    found = []
    if isinstance(value, dict):
        if isinstance(value.get('type'), str):
            found.append((path or '.', value['type']))
        for key, item in value.items():
            found += _types(item, f'{path}.{key}' if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found += _types(item, f'{path}[{index}]')
    return found


def plain_config(cfg: Config) -> Tuple[Config, List[str]]:
    """The config with the plain backbone, without repl-mm's imports, hooks and optimizer wrapper.

    Returns the config and the ``'path (type)'`` of anything in it that still needs repl-mm
    (e.g. a backbone class that only repl-mm defines); then repl-mm's ``custom_imports`` stay.
    """
    tree = copy.deepcopy(cfg.to_dict())
    tree['model'] = plain_model_cfg(tree['model'])
    ours = repl_mm_types()

    def is_ours(cfg_type: str) -> bool:
        return cfg_type.rpartition('.')[2] in ours

    hooks = [h for h in tree.get('custom_hooks') or [] if not is_ours(str(h.get('type', '')))]
    if hooks:
        tree['custom_hooks'] = hooks
    else:
        tree.pop('custom_hooks', None)
    optim_wrapper = tree.get('optim_wrapper') or {}
    if is_ours(str(optim_wrapper.get('type', ''))):
        print_log(f'{optim_wrapper["type"]} (repl-mm) -> OptimWrapper in the plain config.',
                  logger='current')
        optim_wrapper['type'] = 'OptimWrapper'
    custom_keys = (optim_wrapper.get('paramwise_cfg') or {}).get('custom_keys') or {}
    custom_keys.pop(COEFFICIENTS, None)
    tree.update(load_from=None, resume=False)
    still_ours = [f'{path} ({t})' for path, t in _types(tree) if is_ours(t)]
    imports = tree.get('custom_imports')
    if imports and not still_ours:
        modules = [m for m in imports.get('imports', []) if not m.split('.')[0] == 'repl_mm']
        if modules:
            imports['imports'] = modules
        else:
            tree.pop('custom_imports')
    return Config(tree), still_ours


def load_repl_checkpoint(model: torch.nn.Module, filename: str) -> Dict[str, Any]:
    """Load the RepL checkpoint ``filename`` into the RepL model, every key matching; return it.

    A plain checkpoint would load too (the backbone's guard starts the replaced blocks from it),
    and folding would then write the guard's start, not a training's result: refused.
    """
    checkpoint = read_checkpoint(filename)
    state_dict = state_dict_in(checkpoint, filename)
    if not replaced_blocks_in(state_dict):
        raise ReplError(f'{filename} holds no RepL coefficients: it is a plain checkpoint, not '
                        f'one trained with this RepL config. There is nothing to fold: run it '
                        f'with the plain config, or fold the checkpoint the RepL training wrote '
                        f'(its work dir\'s iter_*.pth / epoch_*.pth).', path=filename)
    load_state_strictly(model, state_dict, filename)
    return checkpoint


def backbone_outputs(model: torch.nn.Module) -> List[torch.Tensor]:
    """The backbone's outputs on a fixed random image (eval mode), as a list."""
    generator = torch.Generator().manual_seed(0)
    channels = getattr(model.backbone, 'in_channels', 3)
    image = torch.randn(1, channels, 64, 64, generator=generator)
    with torch.no_grad():
        outputs = model.backbone(image)
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


@dataclass
class FoldResult:
    """What ``fold_checkpoint`` wrote."""

    weights: str
    config: str
    folded_blocks: List[str]
    still_needs_repl_mm: List[str]  # 'config path (type)' of repl-mm classes left in the config


def fold_checkpoint(cfg: Config, checkpoint_file: str, out_dir: str,
                    name: str) -> FoldResult:
    """Fold the RepL checkpoint ``checkpoint_file`` of ``cfg`` into ``out_dir/<name>_folded.*``."""
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    with explain_build_errors(cfg.filename):
        plain_cfg, still_ours = plain_config(cfg)
        settings = repl_settings_of(cfg.model.backbone)  # None: not a RepL backbone
    if settings is not None and settings.kind != 'fused':
        raise ReplError(
            f"repl.kind={settings.kind!r}: folding a light surrogate gives a small module of "
            f"repl-mm (LightConvSurrogate / LightLinearSurrogate), not the plain block, so the "
            f"folded model has no stock-framework config and inference with it still needs "
            f"repl-mm. "
            f"Evaluate the RepL checkpoint with repl-mm's tools/test.py instead.")
    with explain_build_errors(cfg.filename):
        model = MODELS.build(cfg.model).eval()
        plain = MODELS.build(plain_cfg.model).eval()
    checkpoint = load_repl_checkpoint(model, checkpoint_file)
    reference = backbone_outputs(model)
    repl_meta = model.backbone.repl_meta()
    folded = fold_replaced_blocks(model)

    try:
        plain.load_state_dict(model.state_dict(), strict=True)
    except RuntimeError as error:
        raise ReplError(f'The folded weights do not fit the plain model '
                        f'({plain_cfg.model.backbone.type}):\n{error}') from error
    for index, (expected, actual) in enumerate(zip(reference, backbone_outputs(plain))):
        error = (actual - expected).abs().max().item() / max(expected.abs().max().item(), 1e-12)
        if error > 1e-4:
            raise ReplError(f'Folding changed backbone output {index}: relative error '
                            f'{error:.2e}.')

    os.makedirs(out_dir, exist_ok=True)
    config_path = osp.join(out_dir, f'{name}_folded.py')
    weights_path = osp.join(out_dir, f'{name}_folded.pth')
    plain_cfg.dump(config_path)
    meta = primitive(checkpoint.get('meta') or {}) if isinstance(checkpoint, dict) else {}
    meta.pop('repl', None)
    meta.update(cfg=plain_cfg.pretty_text, repl_folded=dict(
        checkpoint=osp.basename(checkpoint_file), folded_blocks=folded,
        repl_mm_version=__version__, **repl_meta))
    state_dict = OrderedDict((k, v.detach().cpu().contiguous())
                             for k, v in plain.state_dict().items())
    torch.save({'state_dict': state_dict, 'meta': meta}, weights_path)
    return FoldResult(weights_path, config_path, folded, still_ours)
