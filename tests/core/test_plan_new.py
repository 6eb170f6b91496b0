"""``repl_core.plan``: the auto plan's own rules (its candidates and its choice in a budget)."""
from types import SimpleNamespace

from repl_core import auto_candidates, choose_within_budget


def blocks(*strides):
    return [SimpleNamespace(stride=s, downsample=None if s == 1 else object()) for s in strides]


def test_auto_candidates_keep_their_input_shape_and_are_neither_first_last_nor_frozen():
    stages = [('layer1', blocks(1, 1, 1)), ('layer2', blocks(2, 1, 1))]
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
