"""What loading a state dict into a backbone with replaced blocks may and may not do.

mmengine loads with ``strict=False`` (``load_from``, ``init_cfg=Pretrained``), which would take a
half-matching checkpoint silently and train from initial coefficients. So every path that loads a
state dict into such a backbone first passes ``StateDictGuard``, a load-state-dict pre-hook:

* a RepL checkpoint made with another plan, kind, granularity or adapter is refused with a
  message naming the difference and the fix (read from each block's
  ``repl_coefficients._extra_state``; for checkpoints without it, from the coefficients' keys
  and shapes); so is a checkpoint that holds nothing for the replaced blocks but holds their
  neighbours (made with ``kind='removed'``) in a fused or light model, and a RepL checkpoint in
  a ``kind='removed'`` model;
* a plain state dict (no coefficients) loads; the tensors it holds for replaced (or removed)
  blocks are dropped with one log line naming the blocks, and the coefficients start as
  ``repl.warm_start`` says: the guard checks, ``warm_start.start_from_plain_state_dict``
  computes the start.
"""
import logging
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from .coefficients import COEFFICIENTS, CoefficientSpec, replaced_blocks
from .errors import CheckpointMismatchError
from .warm_start import start_from_plain_state_dict

Log = Callable[[str], None]
_MARKER = f'.{COEFFICIENTS}.'
_EXTRA_STATE = f'{COEFFICIENTS}._extra_state'


class StateDictGuard:
    """Load-state-dict pre-hook of a backbone whose blocks ``block_paths`` were replaced.

    Args:
        block_paths: the replaced blocks' paths in the backbone (``'layer1.1'``).
        chain: every block's path in the backbone, in forward order.
        kind: ``repl.kind``.
        warm_start: the resolved ``repl.warm_start`` (``settings``): how the coefficients start
            from a plain checkpoint (``warm_start``).
        log: where the one-line summary of a plain checkpoint goes.
    """

    def __init__(self, block_paths: Sequence[str], chain: Sequence[str], kind: str,
                 warm_start: Optional[str], log: Log = logging.getLogger(__name__).info) -> None:
        self.block_paths = list(block_paths)
        self.chain = list(chain)
        self.kind = kind
        self.warm_start = warm_start
        self.log = log

    def __call__(self, module: nn.Module, state_dict: Dict[str, torch.Tensor], prefix: str,
                 *args) -> None:
        incoming = {k[len(prefix):]: k for k in state_dict if k.startswith(prefix)}
        if not incoming:
            return
        theirs = sorted({k.split(_MARKER)[0] for k in incoming if _MARKER in k})
        if theirs:
            self._check_repl_checkpoint(module, theirs, incoming, state_dict, prefix)
        else:
            self._load_plain(module, incoming, state_dict, prefix)

    def _names(self, paths: Sequence[str], prefix: str) -> str:
        return ', '.join(prefix + p for p in paths) or 'nothing'

    def _check_repl_checkpoint(self, module: nn.Module, theirs: List[str],
                               incoming: Dict[str, str], state_dict: Dict[str, torch.Tensor],
                               prefix: str) -> None:
        if self.kind == 'removed':
            raise CheckpointMismatchError(
                f'The checkpoint holds RepL coefficients for {self._names(theirs, prefix)} (it '
                f"was trained with repl.kind='fused' or 'light'), but this model deletes its "
                f"planned blocks (repl.kind='removed'). Set repl.kind to the checkpoint's.",
                checkpoint_blocks=[prefix + p for p in theirs], model_blocks=[])
        ours = self.block_paths
        if set(ours) != set(theirs):
            raise CheckpointMismatchError(
                f'The checkpoint was made with another RepL replacement plan: it replaces '
                f'{self._names(theirs, prefix)}; this model replaces {self._names(ours, prefix)} '
                f'(only in the checkpoint: {sorted(set(theirs) - set(ours)) or "-"}; only in the '
                f'model: {sorted(set(ours) - set(theirs)) or "-"}). Set the backbone\'s '
                f"repl.blocks to the checkpoint's plan, or fold the checkpoint (tools/fold.py) "
                f'and load it into the plain backbone.',
                checkpoint_blocks=[prefix + p for p in theirs],
                model_blocks=[prefix + p for p in ours])
        for path, block in replaced_blocks(module):
            spec: CoefficientSpec = getattr(block, COEFFICIENTS).spec
            key = incoming.get(f'{path}.{_EXTRA_STATE}')
            if key is not None:
                theirs_spec = CoefficientSpec.decode(state_dict[key])
                if theirs_spec != spec:
                    raise CheckpointMismatchError(
                        f'The checkpoint\'s replaced block {prefix}{path} was trained with '
                        f'{spec.differences(theirs_spec)}. Set repl to the checkpoint\'s '
                        f'settings (or fold the checkpoint with tools/fold.py and load it into '
                        f'the plain backbone).', block=prefix + path,
                        checkpoint_spec=theirs_spec, model_spec=spec)
            self._check_keys_and_shapes(path, block, incoming, state_dict, prefix)
            if key is None:
                # a checkpoint of an earlier repl-mm: it matches, so it states this model's
                # settings
                state_dict[f'{prefix}{path}.{_EXTRA_STATE}'] = spec.encode()

    @staticmethod
    def _check_keys_and_shapes(path: str, block: nn.Module, incoming: Dict[str, str],
                               state_dict: Dict[str, torch.Tensor], prefix: str) -> None:
        """The coefficient keys and shapes must match (the only check for checkpoints without
        the extra state; with it, they tell a light surrogate of another repl-mm version)."""
        marker = f'{path}{_MARKER}'
        theirs = {k[len(marker):]: tuple(state_dict[v].shape) for k, v in incoming.items()
                  if k.startswith(marker) and not k.endswith('_extra_state')}
        ours = {k: tuple(p.shape) for k, p in getattr(block, COEFFICIENTS).named_parameters()}
        if theirs.keys() != ours.keys():
            raise CheckpointMismatchError(
                f'The checkpoint\'s replaced block {prefix}{path} has coefficients '
                f'{sorted(theirs)}, this model\'s has {sorted(ours)}: it was trained with '
                f'another repl.kind, repl.granularity or, for a light conv surrogate, '
                f"repl.light_norm ('batch': keys conv_weight, norm_weight, norm_bias; "
                f"'weight': weight, scale, shift). Set them to the checkpoint's.",
                block=prefix + path, checkpoint_keys=sorted(theirs), model_keys=sorted(ours))
        for key, shape in ours.items():
            if theirs[key] != shape:
                raise CheckpointMismatchError(
                    f'Checkpoint tensor {prefix}{marker}{key} has shape {theirs[key]} but the '
                    f'model expects {shape}: the checkpoint was trained with another '
                    f'repl.granularity. Set it to the checkpoint\'s.')

    def _load_plain(self, module: nn.Module, incoming: Dict[str, str],
                    state_dict: Dict[str, torch.Tensor], prefix: str) -> None:
        held = [p for p in self.block_paths if any(k.startswith(f'{p}.') for k in incoming)]
        self._refuse_removed_checkpoint(incoming, prefix)
        for path, block in replaced_blocks(module):  # the coefficients are this model's
            spec = getattr(block, COEFFICIENTS).spec
            state_dict[f'{prefix}{path}.{_EXTRA_STATE}'] = spec.encode()
        own_keys = set(module.state_dict().keys())
        dropped = [k for k in incoming if k not in own_keys
                   and any(k.startswith(f'{path}.') for path in self.block_paths)]
        if not dropped:
            return
        blocks = self._names([p for p in held if any(d.startswith(f'{p}.') for d in dropped)],
                             prefix)
        if self.kind == 'removed':
            message = (f'RepL: {len(dropped)} tensors of the deleted blocks {blocks} '
                       f"(repl.kind='removed') in the loaded state dict were not loaded.")
        else:
            message = (f'RepL: {len(dropped)} tensors of replaced blocks in the loaded state '
                       f'dict were not loaded (their parameters are synthesised from their '
                       f'neighbours): {blocks}.')
        message += start_from_plain_state_dict(module, self.warm_start, self.kind, incoming,
                                               state_dict, prefix)
        for key in dropped:
            del state_dict[incoming[key]]
        self.log(message)

    def _refuse_removed_checkpoint(self, incoming: Dict[str, str], prefix: str) -> None:
        """A checkpoint without coefficients that holds nothing for a block of this model between
        blocks it holds was made with ``kind='removed'`` (those blocks deleted) or for another
        network: loading it would leave those blocks (their statistics and coefficients, or, for
        an ordinary block, its weights) at their initial values."""
        held = [any(k.startswith(f'{path}.') for k in incoming) for path in self.chain]
        missing = [path for i, path in enumerate(self.chain[1:-1], 1)
                   if held[i - 1] and held[i + 1] and not held[i]
                   and not (self.kind == 'removed' and path in self.block_paths)]
        if not missing:
            return
        what = ('the replaced blocks' if set(missing) <= set(self.block_paths)
                else 'the blocks')
        raise CheckpointMismatchError(
            f'The checkpoint holds no tensors for {what} {self._names(missing, prefix)} but holds '
            f"the blocks around them: it was made with repl.kind='removed' (those blocks "
            f'deleted), or for another network, and loading it would leave them at their initial '
            f"values. Set repl.kind='removed' and repl.blocks to the plan it was trained with to "
            f'load it, or use a checkpoint of this backbone.',
            checkpoint_missing=[prefix + p for p in missing])
