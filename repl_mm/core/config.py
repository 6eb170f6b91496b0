"""The ``repl=dict(...)`` argument of a RepL backbone, checked once when the backbone is built."""
import ast
from dataclasses import dataclass, fields
from typing import Mapping, Optional, Tuple

from .adapters import ADAPTERS
from .errors import ReplError
from .synthesis import GRANULARITIES

#: ``repl.kind`` values: what takes a planned block's place
KINDS = ('fused', 'light', 'removed')


@dataclass(frozen=True)
class ReplacementConfig:
    """The ``repl=dict(...)`` argument of a RepL backbone.

    Attributes:
        blocks: ``None`` for the default plan, else ``{stage name or index: [block indices]}``
            (see ``plan``); the string form of that dict, as ``--cfg-options`` gives it, is
            accepted too.
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
        warm_start: when a plain state dict holding the replaced blocks' own weights is loaded
            (e.g. pretrained weights), set each ``(a, b)`` by least squares so that
            ``a * P_prev + b * P_next`` best fits the block's own ``P`` (fused kind), and log the
            fit error; if false, those weights are ignored and ``(a, b)`` keep their values.
    """

    blocks: Optional[Mapping] = None
    kind: str = 'fused'
    granularity: str = 'tensor'
    init: Tuple[float, float] = (0.5, 0.5)
    adapter: str = 'slice_pad'
    detach_neighbours: bool = False
    warm_start: bool = True

    @classmethod
    def from_dict(cls, cfg: Optional[Mapping]) -> 'ReplacementConfig':
        """Build from a config dict; ``None`` or ``{}`` gives the defaults."""
        cfg = dict(cfg or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise ReplError(f'repl: unknown option(s) {unknown}; valid options are {known}.')
        if isinstance(cfg.get('blocks'), str):
            cfg['blocks'] = _parse_blocks(cfg['blocks'])
        config = cls(**cfg)
        config.check()
        return config

    def check(self) -> None:
        for name, value, valid in (('kind', self.kind, KINDS),
                                   ('granularity', self.granularity, GRANULARITIES),
                                   ('adapter', self.adapter, ADAPTERS)):
            if value not in valid:
                raise ReplError(f'repl.{name}={value!r} is unknown; choose one of {valid}.')
        if len(tuple(self.init)) != 2:
            raise ReplError(f'repl.init must be a pair (a, b), got {self.init!r}.')


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
