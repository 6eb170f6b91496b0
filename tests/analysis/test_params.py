"""Tests of repl_mm.analysis.params: parameter counts of a model and of its backbone."""
from torch import nn

from repl_core import synthesised_numel
from repl_mm.analysis.params import count_parameters

from toy_net import replaced_toy


def test_counts_of_a_model_and_its_backbone():
    backbone, _ = replaced_toy()
    backbone.blocks[0].requires_grad_(False)
    model = nn.Module()
    model.backbone, model.head = backbone, nn.Linear(4, 2)
    counts = count_parameters(model)
    stored = sum(p.numel() for p in backbone.parameters())
    frozen = sum(p.numel() for p in backbone.blocks[0].parameters())
    assert counts['backbone'].parameters == stored
    assert counts['backbone'].trainable == stored - frozen
    assert counts['backbone'].synthesised == synthesised_numel(backbone) > 0
    assert counts['backbone'].coefficients == 2 * 2 * 4  # 2 blocks x 4 tensors x (a, b)
    assert counts['model'].parameters == stored + 10
    assert set(count_parameters(backbone)) == {'model'}
