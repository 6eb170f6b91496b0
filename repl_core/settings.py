"""The ``repl=dict(...)`` settings of a RepL backbone: every allowed value and default, one check.

A config's ``repl`` dict passes here when the backbone is built (``ReplacementConfig.from_dict``,
through the backbone class's ``repl_settings``; a tool that needs the settings before it builds the
model, ``tools/convert.py`` or ``tools/fold.py``, asks the same class): unknown keys, unknown values
and combinations that cannot work are refused with the fix; ``warm_start=True`` becomes the start of
the kind and backbone family (``default_warm_start``); ``blocks`` given as text (``--cfg-options``
and stock tools pass a dict as a string) becomes the dict (``parse_dict_literal``, also the tools'
parser). Every other module receives the resolved ``ReplacementConfig`` and checks nothing of it
again. The modules that implement the values (``adapters``, ``light``, ``synthesis``) are handed
checked ones; ``coefficients`` stores them as positions in these tuples (tests/core/test_settings.py
checks that every value is implemented).
"""
import ast
from dataclasses import dataclass, field, fields
from typing import Mapping, Optional, Tuple, Union

from .errors import ReplError

#: ``repl.kind``: what takes a planned block's place
KINDS = ('fused', 'light', 'removed')
#: ``repl.granularity``: one ``(a, b)`` pair per tensor, per output channel, per top-level child
GRANULARITIES = ('tensor', 'channel', 'submodule')
#: ``repl.adapter``: how a neighbour tensor of another shape is brought to shape (``adapters``)
ADAPTERS = ('slice_pad', 'average', 'projection')
#: ``repl.light_norm``: what normalises a conv block's light surrogate (``light``)
LIGHT_NORMS = ('batch', 'weight')
#: ``repl.warm_start``: how the coefficients start from a plain checkpoint (``warm_start``)
WARM_STARTS = ('weights', 'identity', 'activations')
#: backbone families with a start of their own (``RepL*Mixin.repl_family``)
FAMILIES = ('resnet', 'transformer')

#: what ``warm_start=True`` means for each kind, chosen on the transfer benchmark's validation
#: split (docs/benchmarks.md, section 5): for ResNets the fit keeps more of the pretrained
#: function than any other start and was the best per-tensor start on validation
DEFAULT_WARM_START = {'fused': 'activations', 'light': 'activations', 'removed': None}
#: where a family's default differs from its kind's: a pre-norm transformer block started as its
#: shortcut keeps more of a pretrained transformer than the activation fit does, and fine-tunes
#: better (docs/benchmarks.md, section 5)
FAMILY_WARM_START = {'transformer': {'fused': 'identity', 'light': 'identity'}}


def default_warm_start(kind: str, family: Optional[str] = None) -> Optional[str]:
    """What ``warm_start=True`` means for ``kind`` in a backbone of ``family``."""
    return FAMILY_WARM_START.get(family, {}).get(kind, DEFAULT_WARM_START[kind])


def parse_dict_literal(text: str, what: str, alternative: str = '') -> Mapping:
    """``"{'layer3': [1, 3]}"`` -> the dict: how a dict reaches a config through
    ``--cfg-options`` or a stock tool's string. ``what`` names the setting in the error,
    ``alternative`` what else it accepts."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, Mapping):
        raise ReplError(f'{what}={text!r} is not a Python dict literal such as '
                        f'"{{\'layer3\': [1, 3]}}"' + (f' ({alternative}).' if alternative
                                                         else '.'))
    return value


@dataclass(frozen=True)
class ReplacementConfig:
    """The ``repl=dict(...)`` argument of a RepL backbone, checked and resolved.

    Attributes:
        blocks: ``None`` for the default plan, else ``{stage name or index: [block indices]}``
            (see ``plan``); the string form of that dict, as ``--cfg-options`` gives it, is
            accepted too. ``'auto'``: ``tools/convert.py`` chooses the plan from a pretrained
            model and training data, within ``budget``.
        budget: with ``blocks='auto'``, the share of the backbone's parameters to synthesise
            (0 to 1).
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
            recomputes the rest there (``activation_checkpointing.recompute_in_backward``), as
            plain checkpointing of the same blocks would, without changing the training
            trajectory (norm statistics count each batch once). ``with_cp=True`` recomputes
            every block.
        warm_start: how the coefficients start when a plain (pretrained) state dict is
            loaded (``warm_start``): ``'weights'`` (least squares in weight space),
            ``'identity'`` (each replaced block starts as its shortcut) or ``'activations'``
            (fitted to the plain network's activations on training data, by
            ``tools/convert.py``; a plain state dict loaded directly starts as ``'identity'``).
            Given as ``True`` (the default) it resolves to the kind's and family's default
            (``default_warm_start``), ``False`` to ``None`` (keep ``init``): after
            construction it is always one of ``WARM_STARTS`` or ``None``.
        family: the backbone family (``FAMILIES``), set by the backbone class, not by ``repl``:
            it chooses what ``warm_start=True`` means.
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
    warm_start: Union[bool, str, None] = True
    family: Optional[str] = field(default=None, repr=False)

    @classmethod
    def options(cls) -> Tuple[str, ...]:
        """The keys ``repl=dict(...)`` accepts."""
        return tuple(f.name for f in fields(cls) if f.name != 'family')

    @classmethod
    def from_dict(cls, cfg: Optional[Mapping],
                  family: Optional[str] = None) -> 'ReplacementConfig':
        """Check and resolve a config's ``repl`` dict; ``None`` or ``{}`` gives the defaults."""
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(cls.options()))
        if unknown:
            raise ReplError(f'repl: unknown option(s) {unknown}; valid options are '
                            f'{list(cls.options())}.')
        return cls(**cfg, family=family)

    def __post_init__(self) -> None:
        if isinstance(self.blocks, str) and self.blocks != 'auto':
            blocks = (None if self.blocks.strip() == 'None'
                      else parse_dict_literal(self.blocks, 'repl.blocks',
                                              'or None for the default plan'))
            object.__setattr__(self, 'blocks', blocks)
        self._check()
        if isinstance(self.warm_start, bool):
            object.__setattr__(self, 'warm_start', default_warm_start(self.kind, self.family)
                               if self.warm_start else None)

    @property
    def needs_training_data(self) -> bool:
        """Whether starting this model from a plain checkpoint needs batches of training data:
        the auto plan is chosen on them, the activation fit fits to them."""
        return self.blocks == 'auto' or self.warm_start == 'activations'

    def _check(self) -> None:
        for name, value, valid in (('kind', self.kind, KINDS),
                                   ('granularity', self.granularity, GRANULARITIES),
                                   ('adapter', self.adapter, ADAPTERS),
                                   ('light_norm', self.light_norm, LIGHT_NORMS)):
            if value not in valid:
                raise ReplError(f'repl.{name}={value!r} is unknown; choose one of {valid}.')
        if self.family not in FAMILIES + (None, ):
            raise ReplError(f'family={self.family!r} (a backbone class\'s repl_family) is '
                            f'unknown; choose one of {FAMILIES} or None.')
        if len(tuple(self.init)) != 2:
            raise ReplError(f'repl.init must be a pair (a, b), got {self.init!r}.')
        if self.budget is not None and self.blocks != 'auto':
            raise ReplError(f"repl.budget={self.budget!r} goes with repl.blocks='auto' (the "
                            f'plan tools/convert.py chooses); this plan is {self.blocks!r}.')
        if self.blocks == 'auto' and (isinstance(self.budget, bool) or not isinstance(
                self.budget, (int, float)) or not 0 < self.budget < 1):
            raise ReplError(f"repl.blocks='auto' needs repl.budget, the share of the "
                            f'backbone\'s parameters to synthesise (0 to 1), got '
                            f'{self.budget!r}; then run tools/convert.py CONFIG PLAIN_CHECKPOINT '
                            f'OUT_DIR, which chooses the plan and writes a config with it.')
        if self.recompute and self.kind == 'removed':
            raise ReplError("repl.recompute=True: kind='removed' deletes the planned blocks, so "
                            'there is nothing to recompute; drop recompute or choose '
                            "kind='fused' or 'light'.")
        if (not isinstance(self.warm_start, bool) and self.warm_start is not None
                and self.warm_start not in WARM_STARTS):
            raise ReplError(f'repl.warm_start={self.warm_start!r} is unknown; choose one of '
                            f'{WARM_STARTS}, True (the kind\'s default) or False (or None: keep '
                            f'repl.init).')
