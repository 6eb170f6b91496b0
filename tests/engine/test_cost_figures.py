"""Tests of repl_mm.engine.cost_figures: parameter counts, gradient and optimizer-state bytes and
mean coefficients, as TrainingCostHook logs them."""
import pytest
import torch

from repl_core import replaced_blocks, synthesised_numel
from repl_mm.engine.cost_figures import coefficient_means, state_costs, structure_costs

from toy_net import replaced_toy


def test_costs_of_a_replaced_toy_network_before_and_after_a_step():
    net, _ = replaced_toy(init=(0.25, 0.75))
    assert structure_costs(net) == {'params_synthesised': synthesised_numel(net),
                                    'replaced_blocks': 2}
    net.blocks[0].conv.requires_grad_(False)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    before = state_costs(net, [optimizer])
    assert before == {'params_trainable': trainable, 'params_frozen': 4 * 4 * 9 + 4,
                      'grad_bytes': 4 * trainable, 'optimizer_state_bytes': 0}
    means = coefficient_means(replaced_blocks(net))
    assert means == {'blocks.1': pytest.approx((0.25, 0.75)),
                     'blocks.3': pytest.approx((0.25, 0.75))}
    net(torch.randn(2, 4, 6, 6)).square().mean().backward()
    optimizer.step()
    assert state_costs(net, [optimizer])['optimizer_state_bytes'] == 4 * trainable  # momentum
