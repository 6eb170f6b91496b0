"""Light surrogates: one cheap synthesised operator in place of a whole block (``kind='light'``).

A fused replaced block saves weights, gradients and optimizer state but none of the block's
compute. A light surrogate also saves the compute: it keeps only the block's residual connection
and puts one cheap operator inside it, whose parameters are synthesised from the neighbours like a
fused block's (``P = a * adapt(P_prev) + b * adapt(P_next)``):

* ``LightConvSurrogate`` (conv blocks, ``(N, C, H, W)``, ``repl.light_norm='batch'``, the
  default): ``y = relu(x + norm(dwconv(x)))``, a depthwise ``k x k`` conv over the block's ``C``
  channels and a batch norm. The kernel for channel ``i`` is the diagonal ``K[i, i]`` of the
  neighbours' ``k x k`` kernels (channel-resampled to ``C``), i.e. the part of each neighbour's
  spatial filter that maps a channel onto itself; the norm's affine parameters come from the
  neighbours' last norm, its running statistics are its own. For a ResNet-50 bottleneck
  (``C = 4c``) that is ``9 C`` multiply-adds per pixel against ``17 c^2``: about 3% of the block
  at ``c = 64``. Its FLOPs are few, but it passes over the ``(N, C, H, W)`` map about as often as
  the block it replaces (conv, norm statistics and normalisation, sum, ReLU: about ten times
  forward, a dozen backward), which is what a memory-bound GPU pays for.
* ``NormFreeLightConvSurrogate`` (``repl.light_norm='weight'``):
  ``y = relu(x + scale * dwconv_{ws(K)}(x) + shift)``, the same kernel scaled-weight-standardised
  (zero mean, unit norm per channel, as in normaliser-free ResNets) instead of a batch norm after
  it, ``scale`` and ``shift`` from the neighbours' last norm. The residual, the scale and the
  shift fold into the kernel and the conv's bias, so the surrogate is one depthwise conv and an
  in-place ReLU: four passes over the map forward, about seven backward, and nothing kept for the
  backward but its input and output. It trains differently from the batch-norm surrogate
  (docs/benchmarks.md measures both).
* ``LightLinearSurrogate`` (transformer blocks, ``(N, L, d)`` tokens): ``y = x + W norm(x) + b``,
  one ``d x d`` linear map synthesised from the neighbours' attention output projection, with the
  neighbours' first norm: ``d^2`` multiply-adds per token against ``>= 12 d^2`` for the block
  (about 8%).

The framework class says, per block type, which neighbour tensors feed the surrogate
(``LightSpec``); each surrogate says which of its tensors come from where (``sources``) and which
end its residual branch (``residual_ends``); ``replace.replace_blocks`` builds and installs it.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .adapters import _resample_channels
from .errors import PlanError

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
    """``y = relu(x + norm(dwconv(x)))`` on ``(N, C, H, W)``; see the module docstring.

    Synthesised parameters: ``conv.weight`` ``(C, 1, k, k)``, ``norm.weight`` and ``norm.bias``
    ``(C,)``; the norm's running statistics are its own.
    """

    residual_ends = ('norm.weight', 'norm.bias')

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

    def sources(self, spec: 'LightSpec') -> List[Tuple[str, str, Optional[nn.Module]]]:
        """``(tensor path here, tensor path in a block, adapter)`` of each synthesised tensor."""
        return [('conv.weight', spec.weight, DiagonalKernelAdapter(self.conv.weight.shape[0])),
                ('norm.weight', f'{spec.norm}.weight', None),
                ('norm.bias', f'{spec.norm}.bias', None)]


class NormFreeLightConvSurrogate(nn.Module):
    """``y = relu(x + scale * dwconv_{ws(weight)}(x) + shift)`` on ``(N, C, H, W)``.

    Parameters (all synthesised when the surrogate replaces a block): ``weight`` ``(C, 1, k, k)``,
    ``scale`` and ``shift`` ``(C,)``. See the module docstring.
    """

    residual_ends = ('scale', 'shift')
    eps = 1e-6

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size < 2:
            raise ValueError(f'a light conv surrogate standardises {kernel_size}x{kernel_size} '
                             f'kernels to zero mean, which leaves nothing of a 1x1 kernel; it '
                             f'needs the block\'s spatial (k >= 2) conv.')
        self.channels, self.padding = channels, kernel_size // 2
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel_size, kernel_size))
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))
        identity = torch.zeros(channels, 1, kernel_size, kernel_size)
        identity[:, 0, kernel_size // 2, kernel_size // 2] = 1
        self.register_buffer('identity', identity, persistent=False)
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def kernel(self) -> Tensor:
        """``(C, 1, k, k)``: the residual plus ``scale`` times the standardised ``weight``."""
        weight = self.weight
        centred = weight - weight.mean(dim=(1, 2, 3), keepdim=True)
        inverse_norm = torch.rsqrt(centred.square().sum(dim=(1, 2, 3), keepdim=True) + self.eps)
        return torch.addcmul(self.identity.to(weight.dtype), centred,
                             inverse_norm * self.scale.view(-1, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        out = F.conv2d(x, self.kernel(), self.shift, padding=self.padding, groups=self.channels)
        return out.relu_()  # conv backward does not read its output

    def sources(self, spec: 'LightSpec') -> List[Tuple[str, str, Optional[nn.Module]]]:
        """``(tensor path here, tensor path in a block, adapter)`` of each synthesised tensor."""
        return [('weight', spec.weight, DiagonalKernelAdapter(self.channels)),
                ('scale', f'{spec.norm}.weight', None), ('shift', f'{spec.norm}.bias', None)]


class LightLinearSurrogate(nn.Module):
    """``y = x + linear(norm(x))`` on ``(N, L, d)``; extra block arguments are ignored."""

    residual_ends = ('linear.weight', 'linear.bias')

    def __init__(self, norm: nn.Module, dim: int, bias: bool) -> None:
        super().__init__()
        self.norm = norm
        self.linear = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        return x + self.linear(self.norm(x))

    def sources(self, spec: 'LightSpec') -> List[Tuple[str, str, Optional[nn.Module]]]:
        """``(tensor path here, tensor path in a block, adapter)`` of each synthesised tensor."""
        sources = [('linear.weight', spec.weight, None)]
        if spec.bias is not None:
            sources.append(('linear.bias', spec.bias, None))
        return sources + [(f'norm.{t}', f'{spec.norm}.{t}', None) for t in ('weight', 'bias')]


def build_light_surrogate(spec: LightSpec, norm: nn.Module, weight_shape: Sequence[int],
                          light_norm: str) -> nn.Module:
    """The surrogate for a block whose ``spec.weight`` has ``weight_shape``.

    Args:
        norm: the replaced block's own norm module at ``spec.norm``; it moves into the
            surrogate (its running statistics stay the block's own), except with
            ``light_norm='weight'``, which has no norm (it only reads its size).
        light_norm: ``'batch'`` (``LightConvSurrogate``) or ``'weight'``
            (``NormFreeLightConvSurrogate``); conv blocks only.
    """
    if spec.operator == 'depthwise':
        channels = norm.weight.shape[0]
        if light_norm == 'weight':
            return NormFreeLightConvSurrogate(channels, weight_shape[-1])
        return LightConvSurrogate(norm, channels, weight_shape[-1])
    if light_norm != 'batch':
        raise PlanError(f"repl.light_norm={light_norm!r} chooses how a conv block's light "
                        f'surrogate is normalised; a transformer block\'s surrogate is a linear '
                        f"map after the block's own layer norm. Leave light_norm at 'batch'.")
    return LightLinearSurrogate(norm, weight_shape[0], bias=spec.bias is not None)
