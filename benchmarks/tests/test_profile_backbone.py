"""benchmarks/profile_backbone.py: the same-process A/B of plain and RepL backbones."""
import pytest
import torch

from conftest import run_tool


def test_profile_backbone_times_batched_and_per_tensor_synthesis():
    result = run_tool('benchmarks/profile_backbone.py', 'configs/repl_resnet32_cifar10.py',
                      '--kinds', 'fused', '--per-tensor', '--batch-size', '4', '--shape', '16',
                      '16', '--steps', '1', '--rounds', '1', '--top', '0')
    names = [line.split()[0] for line in result.stdout.splitlines() if 'x plain)' in line]
    assert names == ['plain', 'fused', 'fused/per-tensor']


def test_profile_backbone_per_block_under_autocast_channels_last():
    result = run_tool('benchmarks/profile_backbone.py', 'configs/repl_resnet32_cifar10.py',
                      '--kinds', 'fused', 'light', '--per-block', '--amp', 'bf16',
                      '--channels-last', '--batch-size', '4', '--shape', '16', '16', '--steps',
                      '1', '--rounds', '1', '--top', '0')
    names = [line.split()[0] for line in result.stdout.splitlines() if 'x plain)' in line]
    assert names == ['plain', 'fused', 'light', 'fused/per-block', 'light/per-block']


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal where CUDA is absent')
def test_profile_backbone_refuses_cuda_where_there_is_none():
    result = run_tool('benchmarks/profile_backbone.py', 'configs/repl_resnet32_cifar10.py',
                      '--device', 'cuda', check=False)
    assert result.returncode == 2
    assert 'CUDA is not available here; use --device cpu' in result.stderr
