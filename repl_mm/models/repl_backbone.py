"""What every RepL backbone adds to its upstream class: the ``repl=dict(...)`` argument.

A RepL backbone is a thin subclass that lists this mixin before the upstream class and declares
where its blocks are (``repl_stages``); everything else (plan, synthesis, state-dict guard,
freezing, logging) is the generic mechanism in ``repl_mm.core``::

    @MODELS.register_module()
    class RepLResNet(RepLResNetMixin, ResNet):
        pass
"""
from typing import Any, Dict, List, Optional, Tuple

from mmengine.logging import print_log

from torch import nn

from repl_mm.core import (LightSpec, PlanError, ReplacementConfig, ReplacementPlan,
                          replace_blocks, replaced_blocks, synthesised_numel)


def _log(message: str) -> None:
    print_log(message, logger='current')


class RepLBackboneMixin:
    """Adds ``repl`` to a backbone's arguments and replaces blocks after the backbone is built.

    Args:
        repl (dict, optional): ``None`` or ``dict()`` replaces the default plan (every other block
            of each stage from index 1, never a stage's last block). Keys (see
            ``repl_mm.core.ReplacementConfig``): ``blocks`` (``{stage name or index:
            [indices]}``), ``kind``, ``granularity`` (``'tensor'`` | ``'channel'`` |
            ``'submodule'``), ``init`` (``(0.5, 0.5)``), ``adapter`` (``'slice_pad'`` |
            ``'average'`` | ``'projection'``), ``detach_neighbours`` (``False``).

    The coefficients are parameters named ``*.repl_coefficients.*``; exclude them from weight
    decay with ``paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0.)})``.
    Replaced blocks inside frozen stages (``frozen_stages``) have their coefficients frozen too.
    """

    repl_config: ReplacementConfig
    repl_plan: ReplacementPlan
    #: name suffixes of tensors a fused replaced block keeps as its own parameters
    repl_own_tensors: Tuple[str, ...] = ()
    #: name suffix -> equal parts along dim 0 that shape adapters treat separately
    repl_chunked_tensors: Dict[str, int] = {}

    def __init__(self, *args, repl: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.repl_config = ReplacementConfig.from_dict(repl)
        before = sum(p.numel() for p in self.parameters())
        self.repl_plan = replace_blocks(self, self.repl_stages(), self.repl_config, log=_log,
                                        light_spec=self.repl_light_spec,
                                        own_tensors=self.repl_own_tensors,
                                        chunked_tensors=self.repl_chunked_tensors)
        for _, block in replaced_blocks(self):
            for module in block.modules():
                # A replaced block owns no weights, so its own init_cfg (e.g. mmdet's
                # zero_init_residual override) has nothing to initialise.
                if getattr(module, 'init_cfg', None) is not None:
                    module.init_cfg = None
        if hasattr(self, '_freeze_stages') and getattr(self, 'frozen_stages', -1) > 0:
            # Upstream froze its stages before the coefficients existed. Only where stages are
            # frozen, as upstream: mmpretrain's ViT freezes its embeddings in any call.
            self._freeze_stages()
        after = sum(p.numel() for p in self.parameters())
        _log(f'RepL {type(self).__name__} ({self.repl_config.kind}): replaced '
             f'{self.repl_plan}; backbone parameters {before:,} -> {after:,} '
             f'({(before - after) / max(before, 1):.1%} fewer); {synthesised_numel(self):,} '
             f'values are synthesised from neighbours on every forward.')

    def repl_stages(self) -> List[Tuple[str, str]]:
        """``(stage name, path of its block container)`` of every stage, in forward order."""
        raise NotImplementedError

    def repl_light_spec(self, block: nn.Module) -> LightSpec:
        """Which tensors of ``block`` feed its light surrogate (``repl.kind='light'``)."""
        raise PlanError(f"repl.kind='light': {type(self).__name__} has no light surrogate for "
                        f"{type(block).__name__}; use kind='fused'.")

    def repl_meta(self) -> Dict[str, Any]:
        """The replacement, in primitive types, for checkpoint meta."""
        config = self.repl_config
        return dict(plan=self.repl_plan.to_dict(), kind=config.kind,
                    granularity=config.granularity, adapter=config.adapter,
                    init=list(config.init), detach_neighbours=config.detach_neighbours)


class RepLResNetMixin(RepLBackboneMixin):
    """The ResNet family of mmdet, mmseg and mmpretrain: stages ``self.res_layers`` of
    ``BasicBlock`` / ``Bottleneck``.

    Light surrogate: a depthwise conv whose kernels are the diagonals of the neighbours' 3x3
    ``conv2``, and the block's last norm (``norm2`` of a BasicBlock, ``norm3`` of a Bottleneck)
    synthesised from the neighbours' (``repl_mm.core.light``).
    """

    def repl_stages(self) -> List[Tuple[str, str]]:
        return [(name, name) for name in self.res_layers]

    def repl_light_spec(self, block: nn.Module) -> LightSpec:
        if getattr(block, 'downsample', None) is not None or getattr(block, 'stride', 1) != 1:
            raise PlanError(f"repl.kind='light' needs blocks that keep their input's shape; a "
                            f'{type(block).__name__} with a stride or a projection shortcut '
                            f'cannot be replaced by a light surrogate.')
        norm = getattr(block, 'norm3_name', None) or block.norm2_name
        return LightSpec('depthwise', 'conv2.weight', norm)


class RepLTransformerMixin(RepLBackboneMixin):
    """Transformer blocks (ViT layers, Swin blocks) of mmdet, mmseg and mmpretrain.

    * Fused q, k, v projections (``qkv`` in mmpretrain and Swin, ``in_proj_*`` of
      ``nn.MultiheadAttention`` in mmseg's ViT) are adapted part by part when neighbours differ.
    * Swin's relative-position bias table (``(2w-1)^2 x heads``, 0.1% of a Swin-T block) stays the
      replaced block's own parameter: its size follows the window and head count, and the Swin
      classes resize pretrained tables in their own loading code, which expects one per block.
    * Light surrogate: ``y = x + W norm(x) + b``, ``W, b`` synthesised from the neighbours'
      attention output projection, ``norm`` the block's first LayerNorm
      (``repl_mm.core.light``).
    """

    repl_own_tensors = ('relative_position_bias_table', )
    repl_chunked_tensors = {'qkv.weight': 3, 'qkv.bias': 3, 'in_proj_weight': 3,
                            'in_proj_bias': 3}

    def repl_light_spec(self, block: nn.Module) -> LightSpec:
        projection = next((path for path, m in block.named_modules()
                           if isinstance(m, nn.Linear) and path.startswith('attn.')
                           and path.rsplit('.', 1)[-1] in ('proj', 'out_proj')), None)
        norm = next((name for name, m in block.named_children()
                     if isinstance(m, nn.LayerNorm)), None)
        if projection is None or norm is None:
            raise PlanError(f"repl.kind='light': found no attention output projection or "
                            f'LayerNorm in {type(block).__name__}.')
        has_bias = block.get_submodule(projection).bias is not None
        return LightSpec('linear', f'{projection}.weight', norm,
                         bias=f'{projection}.bias' if has_bias else None)


class RepLViTMixin(RepLTransformerMixin):
    """Vision transformers: one stage, ``self.layers``."""

    def repl_stages(self) -> List[Tuple[str, str]]:
        return [('layers', 'layers')]


class RepLSwinMixin(RepLTransformerMixin):
    """Swin transformers: stage ``i`` is ``self.stages[i].blocks``; patch merging (the stage's
    ``downsample``) is never replaced."""

    def repl_stages(self) -> List[Tuple[str, str]]:
        return [(f'stages.{i}', f'stages.{i}.blocks') for i in range(len(self.stages))]
