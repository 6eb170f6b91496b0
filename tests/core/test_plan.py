"""Tests of repl_core.plan: which blocks are replaced, the default rule and the checks of a plan;
the auto plan's own rules (its candidates and its choice in a budget)."""
from types import SimpleNamespace

import pytest

from repl_core import PlanError, auto_candidates, choose_within_budget, is_replaced, resolve_plan

from toy_net import replaced_toy


def test_default_plan_on_toy_sequence():
    net, plan = replaced_toy()
    assert plan.replaced == (('blocks', 1), ('blocks', 3))
    assert [is_replaced(b) for b in net.blocks] == [False, True, False, True, False]


@pytest.mark.parametrize('blocks, message', [
    ({'layer9': [1]}, r"unknown stage 'layer9'"),
    ({5: [1]}, r'unknown stage index 5'),
    ({'layer1': [3]}, r"unknown block index 3; stage layer1 has blocks 0..2"),
    ({'layer1': [0]}, r"layer1\[0\] is the network's first block"),
    ({'layer2': [1]}, r"layer2\[1\] is the network's last block"),
    ({'layer1': [1, 2]}, r'layer1\[1\] and layer1\[2\] are adjacent'),
    ({'layer1': [2], 1: [0]}, r'layer1\[2\] and layer2\[0\] are adjacent'),
    ({'layer1': [1, 1]}, r'duplicate'),
    ({'layer1': [1], 0: [1]}, r'given twice'),
    ({'layer1': 1}, r'must be a list'),
    ([1], r'must be a dict'),
])
def test_invalid_plans_name_stage_index_and_rule(blocks, message):
    with pytest.raises(PlanError, match=message):
        resolve_plan([('layer1', 3), ('layer2', 2)], blocks)


def test_explicit_plan_by_name_and_index_and_default_rule():
    stages = [('layer1', 3), ('layer2', 4), ('layer3', 6), ('layer4', 3)]
    assert resolve_plan(stages).to_dict() == {
        'layer1': [1], 'layer2': [1], 'layer3': [1, 3], 'layer4': [1]}
    assert resolve_plan(stages, {'layer3': [1, 3]}).replaced == (('layer3', 1), ('layer3', 3))
    assert resolve_plan(stages, {2: [3]}).replaced == (('layer3', 3), )
    assert resolve_plan(stages, {}).replaced == ()
    # the last block of a stage may be replaced: its successor lies in the next stage
    assert resolve_plan(stages, {'layer1': [2]}).neighbours(('layer1', 2)) == (
        ('layer1', 1), ('layer2', 0))


def strided_blocks(*strides):
    return [SimpleNamespace(stride=s, downsample=None if s == 1 else object()) for s in strides]


def test_auto_candidates_keep_their_input_shape_and_are_neither_first_last_nor_frozen():
    stages = [('layer1', strided_blocks(1, 1, 1)), ('layer2', strided_blocks(2, 1, 1))]
    assert auto_candidates(stages) == [('layer1', 1), ('layer1', 2), ('layer2', 1)]
    assert auto_candidates(stages, frozen=[('layer1', 1)]) == [('layer1', 2), ('layer2', 1)]


def test_the_auto_plan_takes_the_cheapest_never_two_adjacent_until_the_budget():
    stages = [('layer1', 3), ('layer2', 3)]
    costs = [(('layer1', 1), 0.1, 10), (('layer1', 2), 0.05, 10), (('layer2', 1), 0.2, 10)]
    # the cheapest, layer1[2], excludes its neighbour layer1[1]; layer2[1] is next
    assert choose_within_budget(costs, stages, budget=0.1, total=100) == (
        {'layer1': [2], 'layer2': []}, 10)
    assert choose_within_budget(costs, stages, budget=0.2, total=100) == (
        {'layer1': [2], 'layer2': [1]}, 20)
    # a budget the candidates cannot reach: all that fit, and what they save
    assert choose_within_budget(costs, stages, budget=0.5, total=100) == (
        {'layer1': [2], 'layer2': [1]}, 20)
