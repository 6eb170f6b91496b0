"""Which blocks of a backbone are replaced: the plan, its default rule and its checks.

A backbone is seen as an ordered list of stages, each an indexable container of blocks
(``nn.Sequential`` / ``nn.ModuleList``). Blocks are chained across stages, so the block before
``layer2[0]`` is the last block of ``layer1``. A replaced block synthesises its parameters from the
blocks before and after it in that chain, which gives the rules a plan must obey:

* the network's first and last blocks are never replaced (each lacks a neighbour);
* no two replaced blocks are adjacent (a replaced block's neighbours are ordinary blocks).

The default plan, the same for every backbone, replaces every other block of each stage starting at
index 1 and never a stage's last block, so both neighbours lie inside the stage. For ResNet-50
(3, 4, 6, 3 blocks) that is ``layer1[1], layer2[1], layer3[1, 3], layer4[1]``.

Explicit plans are ``{stage: [indices]}``, the stage given by its name (``'layer3'``) or its
0-based position in the backbone (``2``). They may replace a stage's last block, whose successor
then lies in the next stage and reaches it through a shape adapter (see ``adapters``).

Frozen blocks (``frozen_stages`` of an OpenMMLab backbone) are never replaced: a frozen block has
nothing to train, so replacing it saves no trainable parameter, its coefficients could not learn,
and its synthesised weights would follow a trainable neighbour, so the frozen stage would change.
The default plan leaves them out (``ReplacementPlan.skipped`` names them); an explicit plan that
names one is refused.

The auto plan (``repl.blocks='auto'``, chosen by ``tools/convert.py`` from a pretrained network
and training data) has rules of its own: its candidates are the blocks that may be replaced
alone and keep their input's shape (``auto_candidates``), and it takes the cheapest of them,
never two adjacent, until the budget is met (``choose_within_budget``).
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import PlanError

StageKey = Union[str, int]
BlockRef = Tuple[str, int]  # (stage name, block index)


@dataclass(frozen=True)
class ReplacementPlan:
    """A validated plan.

    Attributes:
        stages: ``(name, number of blocks)`` of every stage, in forward order.
        replaced: the replaced blocks as ``(stage name, index)``, in forward order.
    """

    stages: Tuple[Tuple[str, int], ...]
    replaced: Tuple[BlockRef, ...]
    skipped: Tuple[BlockRef, ...] = ()  # of the default plan, because they are frozen

    @property
    def chain(self) -> List[BlockRef]:
        """Every block of the backbone in forward order."""
        return [(name, i) for name, depth in self.stages for i in range(depth)]

    def neighbours(self, block: BlockRef) -> Tuple[BlockRef, BlockRef]:
        """The ordinary blocks before and after a replaced block."""
        chain = self.chain
        position = chain.index(block)
        return chain[position - 1], chain[position + 1]

    def to_dict(self) -> Dict[str, List[int]]:
        """``{stage name: [indices]}`` with every stage listed; primitive types only."""
        return {
            name: [i for stage, i in self.replaced if stage == name]
            for name, _ in self.stages
        }

    def __str__(self) -> str:
        return format_blocks(self.replaced) or 'no blocks'


def format_blocks(blocks: Sequence[BlockRef]) -> str:
    """``'layer1[1], layer3[1]'``."""
    return ', '.join(f'{stage}[{i}]' for stage, i in blocks)


#: the default plan's rule, in words (messages name it)
DEFAULT_RULE = "every other block of a stage from index 1, never a stage's last"


def default_blocks(depth: int) -> List[int]:
    """Every other block from index 1, never the stage's last: 4 -> [1], 6 -> [1, 3]."""
    return list(range(1, depth - 1, 2))


def resolve_plan(stages: Sequence[Tuple[str, int]],
                 blocks: Optional[Mapping[StageKey, Sequence[int]]] = None,
                 frozen: Sequence[BlockRef] = ()) -> ReplacementPlan:
    """Turn ``repl.blocks`` into a validated plan.

    Args:
        stages: ``(name, number of blocks)`` of every stage, in forward order.
        blocks: ``None`` for the default plan, else ``{stage name or index: [block indices]}``;
            stages left out keep all their blocks.
        frozen: blocks that do not train (frozen stages): the default plan skips them, an
            explicit plan may not name them.

    Raises:
        PlanError: naming the stage, the index and the rule broken.
    """
    stages = tuple((str(name), int(depth)) for name, depth in stages)
    names = [name for name, _ in stages]
    frozen = set(frozen)
    skipped: Tuple[BlockRef, ...] = ()
    if blocks is None:
        default = [(name, i) for name, depth in stages for i in default_blocks(depth)]
        skipped = tuple(block for block in default if block in frozen)
        chosen: Dict[str, List[int]] = {}
        for name, i in default:
            if (name, i) not in frozen:
                chosen.setdefault(name, []).append(i)
    else:
        chosen = _explicit_blocks(stages, blocks)
    replaced = tuple((name, i) for name in names for i in sorted(chosen.get(name, [])))
    plan = ReplacementPlan(stages=stages, replaced=replaced, skipped=skipped)
    _check_rules(plan, frozen)
    return plan


def suggest_blocks(stages: Sequence[Tuple[str, int]],
                   frozen: Sequence[BlockRef] = ()) -> Dict[str, List[int]]:
    """A valid explicit plan for a backbone whose default plan is empty (stages of 1-2 blocks).

    Every other block of the chain from the second, skipping each stage's first block (which
    usually changes shape and has a projection shortcut) and frozen blocks; a stage's last block
    then takes its successor from the next stage, through a shape adapter.
    """
    chain = [(str(name), i) for name, depth in stages for i in range(int(depth))]
    frozen = set(frozen)
    chosen: Dict[str, List[int]] = {}
    last = -2
    for position, (name, i) in enumerate(chain[1:-1], start=1):
        if i == 0 or (name, i) in frozen or position - last < 2:
            continue
        chosen.setdefault(name, []).append(i)
        last = position
    return chosen


def auto_candidates(stages: Sequence[Tuple[str, Sequence[Any]]],
                    frozen: Sequence[BlockRef] = ()) -> List[BlockRef]:
    """Blocks the auto plan may replace alone: not the network's first or last, not frozen, and
    without a projection shortcut or stride (they keep their input's shape).

    Args:
        stages: ``(name, its blocks)`` of every stage, in forward order.
        frozen: blocks that do not train.
    """
    chain = [(str(name), i, block) for name, blocks in stages for i, block in enumerate(blocks)]
    frozen = set(frozen)
    return [(name, i) for name, i, block in chain[1:-1] if (name, i) not in frozen
            and getattr(block, 'downsample', None) is None and getattr(block, 'stride', 1) == 1]


def choose_within_budget(costs: Sequence[Tuple[BlockRef, float, int]],
                         stages: Sequence[Tuple[str, int]], budget: float,
                         total: int) -> Tuple[Dict[str, List[int]], int]:
    """The auto plan: the cheapest blocks first, never two adjacent, until ``budget`` of the
    backbone's ``total`` parameters are synthesised.

    Args:
        costs: ``(block, cost, parameters it saves)`` of every candidate tried, in any order.
        stages: ``(name, number of blocks)`` of every stage, in forward order.

    Returns:
        ``{stage name: [indices]}`` with every stage listed, and the parameters it saves (less
        than ``budget * total`` when the candidates do not reach the budget).
    """
    chain = [(str(name), i) for name, depth in stages for i in range(int(depth))]
    chosen: List[BlockRef] = []
    saved = 0
    for block, _, block_saved in sorted(costs, key=lambda c: c[1]):
        position = chain.index(block)
        if any(abs(chain.index(other) - position) < 2 for other in chosen):
            continue
        chosen.append(block)
        saved += block_saved
        if saved >= budget * total:
            break
    plan = {name: sorted(i for stage, i in chosen if stage == name) for name, _ in stages}
    return plan, saved


def _describe(stages: Sequence[Tuple[str, int]]) -> str:
    return ', '.join(f'{i}: {name} ({depth} blocks)' for i, (name, depth) in enumerate(stages))


def _explicit_blocks(stages: Sequence[Tuple[str, int]],
                     blocks: Mapping[StageKey, Sequence[int]]) -> Dict[str, List[int]]:
    if not isinstance(blocks, Mapping):
        raise PlanError(f'repl.blocks must be a dict {{stage: [block indices]}} or None for the '
                        f'default plan, got {blocks!r}. Stages: {_describe(stages)}.')
    depth_of = dict(stages)
    chosen: Dict[str, List[int]] = {}
    for key, indices in blocks.items():
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise PlanError(f'repl.blocks: stage key {key!r} must be a stage name or index. '
                            f'Stages: {_describe(stages)}.')
        if isinstance(key, int):
            if not 0 <= key < len(stages):
                raise PlanError(f'repl.blocks: unknown stage index {key}; this backbone has '
                                f'{len(stages)} stages ({_describe(stages)}).')
            name = stages[key][0]
        elif key in depth_of:
            name = key
        else:
            raise PlanError(f'repl.blocks: unknown stage {key!r}; this backbone\'s stages are '
                            f'{_describe(stages)}.')
        if name in chosen:
            raise PlanError(f'repl.blocks: stage {name!r} is given twice (by name and by index).')
        if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence):
            raise PlanError(f'repl.blocks[{key!r}] must be a list of block indices, '
                            f'got {indices!r}.')
        depth = depth_of[name]
        for index in indices:
            if isinstance(index, bool) or not isinstance(index, int):
                raise PlanError(f'repl.blocks[{key!r}]: block index {index!r} is not an int.')
            if not 0 <= index < depth:
                raise PlanError(f'repl.blocks[{key!r}]: unknown block index {index}; stage '
                                f'{name} has blocks 0..{depth - 1}.')
        if len(set(indices)) != len(indices):
            raise PlanError(f'repl.blocks[{key!r}]: duplicate block indices in {list(indices)}.')
        chosen[name] = list(indices)
    return chosen


def _check_rules(plan: ReplacementPlan, frozen: set) -> None:
    chain = plan.chain
    replaced = set(plan.replaced)
    for stage, index in plan.replaced:
        if (stage, index) in frozen:
            raise PlanError(
                f'repl.blocks: {stage}[{index}] is frozen (frozen_stages): a frozen block has '
                f'nothing to train, so replacing it saves no trainable parameter, its '
                f'coefficients could not learn, and its synthesised weights would follow its '
                f'trainable neighbours, so the frozen stage would change. Remove it from '
                f'repl.blocks, or lower frozen_stages.')
        position = chain.index((stage, index))
        if position == 0:
            raise PlanError(f'repl.blocks: {stage}[{index}] is the network\'s first block; a '
                            f'replaced block needs a preceding block to synthesise from.')
        if position == len(chain) - 1:
            raise PlanError(f'repl.blocks: {stage}[{index}] is the network\'s last block; a '
                            f'replaced block needs a succeeding block to synthesise from.')
        following = chain[position + 1]
        if following in replaced:
            raise PlanError(f'repl.blocks: {stage}[{index}] and {following[0]}[{following[1]}] '
                            f'are adjacent; a replaced block\'s neighbours must be ordinary '
                            f'blocks, so no two replaced blocks may touch.')
