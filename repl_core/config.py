"""The ``repl=dict(...)`` argument of a RepL backbone, checked once when the backbone is built."""
import ast
from dataclasses import dataclass, fields
from typing import Mapping, Optional, Tuple, Union

from .adapters import ADAPTERS
from .errors import ReplError
from .light import LIGHT_NORMS
from .synthesis import GRANULARITIES

#: ``repl.kind`` values: what takes a planned block's place
KINDS = ('fused', 'light', 'removed')
#: ``repl.warm_start`` values (``conversion``)
WARM_STARTS = ('weights', 'identity', 'activations')
#: what ``warm_start=True`` means for each kind, chosen on the transfer benchmark's validation
#: split (docs/benchmarks.md, section 5): for ResNets the fit keeps more of the pretrained
#: function than any other start and was the best per-tensor start on validation
DEFAULT_WARM_START = {'fused': 'activations', 'light': 'activations', 'removed': None}


@dataclass(frozen=True)
class ReplacementConfig:
    """The ``repl=dict(...)`` argument of a RepL backbone.

    Attributes:
        blocks: ``None`` for the default plan, else ``{stage name or index: [block indices]}``
            (see ``plan``); the string form of that dict, as ``--cfg-options`` gives it, is
            accepted too. ``'auto'``: ``tools/convert.py`` chooses the plan from a pretrained
            model and training data, within ``budget``.
        budget: with ``blocks='auto'``, the share of the backbone's parameters to synthesise.
        kind: ``'fused'``: the whole block runs with synthesised parameters; ``'light'``: the
            block is replaced by one cheap synthesised operator inside its residual (``light``);
            ``'removed'``: not RepL but its baseline, the planned blocks are deleted (identity),
            the cost floor any surrogate must justify itself against.
        granularity: one ``(a, b)`` pair per parameter tensor (``'tensor'``), per output channel
            of each tensor (``'channel'``), or per top-level child module of the block
            (``'submodule'``, e.g. one for attention and one for the MLP).
        init: initial ``(a, b)``; ``(0.5, 0.5)`` averages the neighbours.
        adapter: how neighbour tensors of another shape are brought to shape (``adapters``).
        detach_neighbours: if true, gradients through synthesised weights reach only the
            coefficients, not the neighbours' weights.
        coefficient_lr_mult: scales every optimizer update of the coefficients
            (``coefficient_steps``: their gradients are sums over whole tensors).
        light_norm: with ``kind='light'``, a conv block's surrogate: ``'batch'`` (a depthwise
            conv and a batch norm) or ``'weight'`` (one depthwise conv with a standardised kernel,
            no batch norm: fewer passes over the activations, another training behaviour; see
            ``light``).
        recompute: if true, each replaced block keeps only its input for the backward pass and
            recomputes the rest there (``checkpointing.recompute_in_backward``), as plain
            checkpointing of the same blocks would, without changing the training trajectory
            (norm statistics count each batch once). ``with_cp=True`` recomputes every block.
        warm_start: how the coefficients start when a plain (pretrained) state dict is
            loaded: ``'weights'`` (least squares in weight space), ``'identity'`` (each replaced
            block starts as its shortcut) or ``'activations'`` (fitted to the plain network's
            activations on training data, by ``tools/convert.py``; a plain state dict loaded
            directly starts as ``'identity'``); ``True`` is the kind's default
            (``DEFAULT_WARM_START``), ``False`` keeps ``init``. See ``conversion``.
    """

    blocks: Union[None, str, Mapping] = None
    budget: Optional[float] = None
    kind: str = 'fused'
    granularity: str = 'tensor'
    init: Tuple[float, float] = (0.5, 0.5)
    adapter: str = 'slice_pad'
    detach_neighbours: bool = False
    coefficient_lr_mult: float = 1.0
    light_norm: str = 'batch'
    recompute: bool = False
    warm_start: Union[bool, str] = True

    @classmethod
    def from_dict(cls, cfg: Optional[Mapping]) -> 'ReplacementConfig':
        """Build from a config dict; ``None`` or ``{}`` gives the defaults."""
        cfg = dict(cfg or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise ReplError(f'repl: unknown option(s) {unknown}; valid options are {known}.')
        if isinstance(cfg.get('blocks'), str) and cfg['blocks'] != 'auto':
            cfg['blocks'] = _parse_blocks(cfg['blocks'])
        config = cls(**cfg)
        config.check()
        return config

    def check(self) -> None:
        for name, value, valid in (('kind', self.kind, KINDS),
                                   ('granularity', self.granularity, GRANULARITIES),
                                   ('adapter', self.adapter, ADAPTERS),
                                   ('light_norm', self.light_norm, LIGHT_NORMS)):
            if value not in valid:
                raise ReplError(f'repl.{name}={value!r} is unknown; choose one of {valid}.')
        if len(tuple(self.init)) != 2:
            raise ReplError(f'repl.init must be a pair (a, b), got {self.init!r}.')
        if self.budget is not None and self.blocks != 'auto':
            raise ReplError(f"repl.budget={self.budget!r} goes with repl.blocks='auto' (the "
                            f'plan tools/convert.py chooses); this plan is {self.blocks!r}.')
        if self.recompute and self.kind == 'removed':
            raise ReplError("repl.recompute=True: kind='removed' deletes the planned blocks, so "
                            'there is nothing to recompute; drop recompute or choose '
                            "kind='fused' or 'light'.")
        if not isinstance(self.warm_start, bool) and self.warm_start not in WARM_STARTS:
            raise ReplError(f'repl.warm_start={self.warm_start!r} is unknown; choose one of '
                            f'{WARM_STARTS}, True (the kind\'s default) or False.')

    @property
    def warm_start_mode(self) -> Optional[str]:
        """The warm start in effect: one of ``WARM_STARTS`` or ``None``."""
        if self.warm_start is True:
            return DEFAULT_WARM_START[self.kind]
        return self.warm_start or None


def _parse_blocks(text: str) -> Optional[Mapping]:
    """``"{'layer3': [1, 3]}"`` -> the dict; ``--cfg-options`` passes a dict value as text."""
    try:
        blocks = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        blocks = text
    if blocks is not None and not isinstance(blocks, Mapping):
        raise ReplError(f'repl.blocks={text!r} is not a dict literal such as '
                        f'"{{\'layer3\': [1, 3]}}" (or None for the default plan).')
    return blocks
