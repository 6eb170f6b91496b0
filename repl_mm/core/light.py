"""Light surrogates: one cheap synthesised operator in place of a whole block (``kind='light'``).

A fused replaced block saves weights, gradients and optimizer state but none of the block's
compute. A light surrogate also saves the compute: it keeps only the block's residual connection
and puts one cheap operator inside it, whose parameters are synthesised from the neighbours like a
fused block's (``P = a * adapt(P_prev) + b * adapt(P_next)``):

* ``LightConvSurrogate`` (conv blocks, ``(N, C, H, W)``): ``y = relu(x + norm(dwconv(x)))``, a
  depthwise ``k x k`` conv over the block's ``C`` channels. Its kernel for channel ``i`` is the
  diagonal ``K[i, i]`` of the neighbours' ``k x k`` kernels (channel-resampled to ``C``), i.e. the
  part of each neighbour's spatial filter that maps a channel onto itself; the norm's affine
  parameters come from the neighbours' last norm, its running statistics are its own. For a
  ResNet-50 bottleneck (``C = 4c``) that is ``9 C`` multiply-adds per pixel against ``17 c^2``:
  about 3% of the block at ``c = 64``.
* ``LightLinearSurrogate`` (transformer blocks, ``(N, L, d)`` tokens): ``y = x + W norm(x) + b``,
  one ``d x d`` linear map synthesised from the neighbours' attention output projection, with the
  neighbours' first norm: ``d^2`` multiply-adds per token against ``>= 12 d^2`` for the block
  (about 8%).

The framework class says, per block type, which neighbour tensors feed the surrogate
(``LightSpec``); ``replace.replace_blocks`` builds and installs it.
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .adapters import _resample_channels

OPERATORS = ('depthwise', 'linear')


@dataclass(frozen=True)
class LightSpec:
    """Where a block type's light surrogate takes its tensors from.

    Attributes:
        operator: ``'depthwise'`` (conv blocks) or ``'linear'`` (transformer blocks).
        weight: path in a block of the tensor the operator is synthesised from: a ``k x k``
            conv kernel (e.g. ``'conv2.weight'``) or a ``d x d`` linear weight
            (e.g. ``'attn.proj.weight'``).
        norm: path in a block of the norm module the surrogate's norm copies (its type and
            size) and whose weight and bias it synthesises (e.g. ``'bn3'``, ``'ln1'``).
        bias: path of the linear operator's bias, if it has one (e.g. ``'attn.proj.bias'``).
    """

    operator: str
    weight: str
    norm: str
    bias: Optional[str] = None


class DiagonalKernelAdapter(nn.Module):
    """``(c_out, c_in, k, k)`` conv kernel -> ``(C, 1, k, k)`` depthwise kernel.

    Takes the diagonal ``K[i, i]`` (``min(c_out, c_in)`` kernels) and resamples it to ``C``
    channels (repeat to grow, average to shrink).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, kernel: Tensor) -> Tensor:
        diagonal = torch.diagonal(kernel, dim1=0, dim2=1).movedim(-1, 0)  # (min(c), k, k)
        diagonal = _resample_channels(diagonal, 0, self.channels)
        return diagonal.unsqueeze(1)


class LightConvSurrogate(nn.Module):
    """``y = relu(x + norm(dwconv(x)))`` on ``(N, C, H, W)``; see the module docstring."""

    def __init__(self, norm: nn.Module, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                              groups=channels, bias=False)
        self.norm = norm

    def forward(self, x: Tensor) -> Tensor:
        out = self.norm(self.conv(x))
        # in place on the norm's fresh output, as the ResNet blocks do: no (N, C, H, W)
        # temporaries for the sum and the ReLU (norm backward does not read its output)
        out += x
        return out.relu_()


class LightLinearSurrogate(nn.Module):
    """``y = x + linear(norm(x))`` on ``(N, L, d)``; extra block arguments are ignored."""

    def __init__(self, norm: nn.Module, dim: int, bias: bool) -> None:
        super().__init__()
        self.norm = norm
        self.linear = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        return x + self.linear(self.norm(x))


def build_light_surrogate(spec: LightSpec, norm: nn.Module,
                          weight_shape: Sequence[int]) -> nn.Module:
    """The surrogate for a block whose ``spec.weight`` has ``weight_shape``.

    Args:
        norm: the replaced block's own norm module at ``spec.norm``; it moves into the
            surrogate (its running statistics stay the block's own).
    """
    if spec.operator == 'depthwise':
        channels = norm.weight.shape[0]
        return LightConvSurrogate(norm, channels, weight_shape[-1])
    return LightLinearSurrogate(norm, weight_shape[0], bias=spec.bias is not None)
