"""Toy networks in plain PyTorch that the mechanism's tests share: residual blocks, bottlenecks,
transformer-like encoders."""
import torch
from torch import nn

from repl_core import LightSpec, ReplacementConfig, replace_blocks


class ToyBlock(nn.Module):
    """conv -> BN -> relu, with a residual; enough to exercise every kind of tensor."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        return x + torch.relu(self.bn(self.conv(x)))


class ToyNet(nn.Module):
    def __init__(self, depth: int = 5, channels: int = 4) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[ToyBlock(channels) for _ in range(depth)])

    def forward(self, x):
        return self.blocks(x)


def replaced_toy(**repl):
    torch.manual_seed(0)
    net = ToyNet()
    plan = replace_blocks(net, [('blocks', 'blocks')], ReplacementConfig.from_dict(repl))
    return net, plan


class Bottleneck(nn.Module):
    """A ResNet bottleneck (4c -> c -> c -> 4c) with an identity shortcut."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4 * c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, 4 * c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * c)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        return torch.relu(x + self.bn3(self.conv3(out)))


class Encoder(nn.Module):
    """A pre-norm transformer block on (N, L, d) tokens."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        y = self.ln1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.ffn(self.ln2(x))


def conv_net(c=8, **repl):
    torch.manual_seed(0)
    net = nn.Sequential(*[Bottleneck(c) for _ in range(5)])
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    wrapper = nn.Module()
    wrapper.blocks = net
    replace_blocks(wrapper, [('blocks', 'blocks')], ReplacementConfig.from_dict(repl),
                   light_spec=lambda block: LightSpec('depthwise', 'conv2.weight', 'bn3'))
    return wrapper
