"""What every RepL backbone adds to its upstream class: the ``repl=dict(...)`` argument.

A RepL backbone is a thin subclass that lists this mixin before the upstream class and declares
where its blocks are (``repl_stages``); everything else (plan, synthesis, state-dict guard,
freezing, logging) is the generic mechanism in ``repl_core``::

    @MODELS.register_module()
    class RepLResNet(RepLResNetMixin, ResNet):
        pass
"""
import logging
from typing import Any, Dict, List, Mapping, Optional, Tuple

from mmengine.logging import print_log
from mmengine.registry import MODELS
from torch import nn

from repl_core import (LightSpec, PlanError, ReplacementConfig, ReplacementPlan,
                       checkpoint_without_reentry, format_blocks, recompute_in_backward,
                       replace_blocks, replaced_blocks, suggest_blocks, synthesised_numel)
from repl_core.plan import DEFAULT_RULE


def _log(message: str, level: int = logging.INFO) -> None:
    print_log(message, logger='current', level=level)


class RepLBackboneMixin:
    """Adds ``repl`` to a backbone's arguments and replaces blocks after the backbone is built.

    Args:
        repl (dict, optional): the replacement, ``repl_core.ReplacementConfig`` (its keys,
            values and defaults: ``repl_core.settings``); ``None`` or ``dict()`` replaces the
            default plan (``repl_core.plan``).

    The coefficients are parameters named ``*.repl_coefficients.*``; optimizers step them
    without weight decay and at ``repl.coefficient_lr_mult``
    (``repl_core.coefficient_steps``). Frozen blocks (``frozen_stages``) are never replaced:
    the default plan skips them and says so, an explicit plan naming one is refused. With
    ``with_cp=True``, the replaced blocks and their neighbours checkpoint without reentry
    (``repl_core.activation_checkpointing``: what DDP needs), the other blocks as upstream does;
    ``repl.recompute=True`` checkpoints the replaced blocks alone.
    """

    repl_config: ReplacementConfig
    repl_plan: ReplacementPlan
    #: name suffixes of tensors a fused replaced block keeps as its own parameters
    repl_own_tensors: Tuple[str, ...] = ()
    #: name suffix -> equal parts along dim 0 that shape adapters treat separately
    repl_chunked_tensors: Dict[str, int] = {}
    #: the backbone family (``repl_core.settings.FAMILIES``): it chooses what
    #: ``repl.warm_start=True`` means (``repl_core.settings.default_warm_start``)
    repl_family: Optional[str] = None

    @classmethod
    def repl_settings(cls, repl: Optional[dict]) -> ReplacementConfig:
        """``repl=dict(...)`` checked and resolved for this family (``repl_core.settings``)."""
        return ReplacementConfig.from_dict(repl, family=cls.repl_family)

    def __init__(self, *args, repl: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.repl_config = self.repl_settings(repl)
        before = sum(p.numel() for p in self.parameters())
        frozen = self.repl_frozen_blocks()
        self.repl_plan = replace_blocks(self, self.repl_stages(), self.repl_config,
                                        light_spec=self.repl_light_spec,
                                        own_tensors=self.repl_own_tensors,
                                        chunked_tensors=self.repl_chunked_tensors,
                                        frozen=frozen, residual_ends=self.repl_residual_ends)
        for _, block in replaced_blocks(self):
            for module in block.modules():
                # A replaced block owns no weights, so its own init_cfg (e.g. mmdet's
                # zero_init_residual override) has nothing to initialise.
                if getattr(module, 'init_cfg', None) is not None:
                    module.init_cfg = None
        recheckpointed = self._checkpoint_synthesis_blocks_without_reentry()
        after = sum(p.numel() for p in self.parameters())
        self._log_replacement(before, after, recheckpointed, frozen)

    def repl_frozen_blocks(self) -> List[Tuple[str, int]]:
        """``(stage, index)`` of every block whose parameters are all frozen (``frozen_stages``).

        Swin freezes its stages only in ``train()``; freezing here is what upstream does there.
        """
        if hasattr(self, '_freeze_stages') and getattr(self, 'frozen_stages', -1) > 0:
            self._freeze_stages()
        frozen = []
        for name, path in self.repl_stages():
            for index, block in enumerate(self.get_submodule(path)):
                params = list(block.parameters())
                if params and not any(p.requires_grad for p in params):
                    frozen.append((name, index))
        return frozen

    def _checkpoint_synthesis_blocks_without_reentry(self) -> int:
        if self.repl_config.kind == 'removed':
            return 0
        containers = {name: self.get_submodule(path) for name, path in self.repl_stages()}
        involved = []
        for block in self.repl_plan.replaced:
            involved += [block, *self.repl_plan.neighbours(block)]
        switched = {position: checkpoint_without_reentry(containers[position[0]][position[1]])
                    for position in dict.fromkeys(involved)}
        if self.repl_config.recompute:
            for stage, index in self.repl_plan.replaced:
                recompute_in_backward(containers[stage][index], switched[(stage, index)])
        return sum(switched.values())

    def _log_replacement(self, before: int, after: int, recheckpointed: int,
                         frozen: List[Tuple[str, int]]) -> None:
        plan, name = self.repl_plan, type(self).__name__
        message = f'RepL {name} ({self.repl_config.kind}): replaced {plan}'
        if plan.skipped:
            message += (f'; skipped {format_blocks(plan.skipped)} of the default plan: frozen '
                        f'(frozen_stages={getattr(self, "frozen_stages", None)}), a frozen block '
                        f'has nothing to train')
        message += (f'; backbone parameters {before:,} -> {after:,} '
                    f'({(before - after) / max(before, 1):.1%} fewer); '
                    f'{synthesised_numel(self):,} values are synthesised from neighbours on '
                    f'every forward.')
        if self.repl_config.recompute:
            message += (f' recompute: the replaced blocks keep only their inputs for the '
                        f'backward pass and recompute the rest there.')
        if recheckpointed:
            message += (f' with_cp: {recheckpointed} blocks (replaced and their neighbours) '
                        f'checkpoint without reentry, as DDP needs.')
        _log(message)
        if plan.replaced or self.repl_config.blocks is not None:
            return
        depths = ', '.join(str(depth) for _, depth in plan.stages)
        suggestion = suggest_blocks(plan.stages, frozen)
        advice = (f'A plan that works here: repl=dict(blocks={suggestion}) (a stage\'s last '
                  f'block then takes its successor from the next stage, through a shape '
                  f'adapter).' if suggestion else 'No block of this backbone can be replaced.')
        _log(f'RepL {name}: the default plan replaces no block, so nothing is saved: it '
             f'replaces {DEFAULT_RULE} '
             f'{"nor a frozen block " if plan.skipped else ""}(stages of {depths} blocks). '
             f'{advice}', logging.WARNING)

    def repl_stages(self) -> List[Tuple[str, str]]:
        """``(stage name, path of its block container)`` of every stage, in forward order."""
        raise NotImplementedError

    def repl_residual_ends(self, block: nn.Module) -> List[str]:
        """Paths, in ``block``, of the tensors that end its residual branch: zero, the block is
        its shortcut (``repl.warm_start='identity'``)."""
        raise PlanError(f"repl.warm_start='identity': {type(self).__name__} does not say where "
                        f'the residual branch of a {type(block).__name__} ends; use '
                        f"warm_start='weights'.")

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


def repl_settings_of(backbone_cfg: Mapping) -> Optional[ReplacementConfig]:
    """The settings a backbone config's class would build from its ``repl`` (checked and
    resolved), without building the backbone; ``None`` for a class that is not a RepL backbone.
    The type is looked up under the current default scope, as ``MODELS.build`` does."""
    with MODELS.switch_scope_and_registry(None) as registry:
        cls = registry.get(backbone_cfg['type'])
    if not (isinstance(cls, type) and issubclass(cls, RepLBackboneMixin)):
        return None
    return cls.repl_settings(backbone_cfg.get('repl'))


class RepLResNetMixin(RepLBackboneMixin):
    """The ResNet family of mmdet, mmseg and mmpretrain: stages ``self.res_layers`` of
    ``BasicBlock`` / ``Bottleneck``.

    Light surrogate: a depthwise conv whose kernels are the diagonals of the neighbours' 3x3
    ``conv2``, and the block's last norm (``norm2`` of a BasicBlock, ``norm3`` of a Bottleneck)
    synthesised from the neighbours' (``repl_core.light``).
    """

    repl_family = 'resnet'

    def repl_stages(self) -> List[Tuple[str, str]]:
        return [(name, name) for name in self.res_layers]

    def repl_residual_ends(self, block: nn.Module) -> List[str]:
        norm = getattr(block, 'norm3_name', None) or block.norm2_name
        return [f'{norm}.weight', f'{norm}.bias']

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
      (``repl_core.light``).
    """

    repl_own_tensors = ('relative_position_bias_table', )
    repl_family = 'transformer'
    repl_chunked_tensors = {'qkv.weight': 3, 'qkv.bias': 3, 'in_proj_weight': 3,
                            'in_proj_bias': 3}

    @staticmethod
    def _attention_projection(block: nn.Module) -> Optional[str]:
        return next((path for path, m in block.named_modules()
                     if isinstance(m, nn.Linear) and path.startswith('attn.')
                     and path.rsplit('.', 1)[-1] in ('proj', 'out_proj')), None)

    def repl_residual_ends(self, block: nn.Module) -> List[str]:
        """The attention's output projection and the MLP's last linear map: both branches of a
        pre-norm block end there."""
        mlp = [path for path, m in block.named_modules()
               if isinstance(m, nn.Linear) and path.startswith(('ffn.', 'mlp.'))]
        projection = self._attention_projection(block)
        if projection is None or not mlp:
            return super().repl_residual_ends(block)
        return [f'{path}.{name}' for path in (projection, mlp[-1])
                for name in ('weight', 'bias')
                if getattr(block.get_submodule(path), name, None) is not None]

    def repl_light_spec(self, block: nn.Module) -> LightSpec:
        projection = self._attention_projection(block)
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
