"""Tests of repl_core.synthesis_kernels: ``SynthesiseTensors``, the one autograd node that
synthesises many tensors (``foreach`` kernels on the CPU, one flat buffer where
``uses_flat_synthesis`` says so)."""
import torch

from repl_core.synthesis_kernels import SynthesiseTensors, uses_flat_synthesis


def test_values_and_gradients_are_the_formulas():
    generator = torch.Generator().manual_seed(0)

    def tensor(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).requires_grad_()

    coefficients = [tensor(2), tensor(2, 3)]  # per tensor, per output channel
    prevs, nexts = [tensor(4, 5), tensor(3, 2, 2)], [tensor(4, 5), tensor(3, 2, 2)]
    inputs = (*coefficients, *prevs, *nexts)
    assert not uses_flat_synthesis(inputs)  # the CPU keeps the foreach path

    values = SynthesiseTensors.apply((), 2, *inputs)
    a1, b1 = coefficients[1][0].view(3, 1, 1), coefficients[1][1].view(3, 1, 1)
    expected = (coefficients[0][0] * prevs[0] + coefficients[0][1] * nexts[0],
                a1 * prevs[1] + b1 * nexts[1])
    for value, reference in zip(values, expected):
        torch.testing.assert_close(value, reference)
    assert torch.autograd.gradcheck(lambda *t: SynthesiseTensors.apply((), 2, *t), inputs)
