"""Tests of repl_core.warm_start: the one place a start is computed (the load guard only calls it).
Starting RepL backbones of each framework from a pretrained plain one (``repl.warm_start``):
``'identity'`` computes exactly the network without the replaced blocks, ``'activations'`` fits the
blocks to the plain network's activations and re-measures their norm statistics."""
import copy

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope
from torch import nn

import repl_mm  # noqa: F401
from repl_core import (COEFFICIENTS, LightSpec, PlanError, ReplacementConfig, ReplError,
                       replace_blocks, replaced_blocks)
from repl_core.warm_start import convert_from_plain, residual_keys, start_from_plain_state_dict
from repl_mm.models import plain_model_cfg

from conftest import perturb
from toy_net import ToyNet

pytestmark = pytest.mark.usefixtures('one_thread')

CASES = {
    'mmdet-resnet': ('mmdet', dict(type='RepLResNet', depth=50, base_channels=16), 32),
    'mmseg-swin': ('mmseg', dict(type='RepLSwinTransformer', embed_dims=32, depths=(2, 2, 4, 2),
                                 num_heads=(1, 2, 4, 8), window_size=4), 64),
    'mmpretrain-vit': ('mmpretrain', dict(type='RepLVisionTransformer', img_size=32,
                                          patch_size=8, arch=dict(embed_dims=32, num_layers=5,
                                                                  num_heads=2,
                                                                  feedforward_channels=64)), 32),
    'mmseg-vit': ('mmseg', dict(type='RepLVisionTransformer', img_size=(32, 32), patch_size=8,
                                embed_dims=32, num_layers=5, num_heads=2), 32),
    'mmpretrain-cifar-light': ('mmpretrain', dict(type='RepLCIFARResNet', depth=20,
                                                  repl=dict(kind='light')), 32),
}


def build(scope, cfg, **repl):
    init_default_scope(scope)
    torch.manual_seed(0)  # the same model whichever tests ran before
    return MODELS.build(dict(cfg, repl=dict(cfg.get('repl', {}), **repl)))


def pretrained_plain(scope, cfg):
    """The plain twin with weights and statistics that are not the initial ones."""
    init_default_scope(scope)
    plain = MODELS.build(plain_model_cfg(dict(backbone=dict(cfg)))['backbone'])
    perturb(plain, scale=0.1)
    plain.eval()  # mmdet's ResNet.train() returns None, so eval() does too
    return plain


def outputs(model, x):
    model.eval()
    with torch.no_grad():
        out = model(x)
    return [o for o in (out if isinstance(out, (tuple, list)) else [out]) if torch.is_tensor(o)]


@pytest.mark.parametrize('case', list(CASES))
def test_identity_start_is_the_network_without_the_replaced_blocks(case):
    scope, cfg, size = CASES[case]
    plain = pretrained_plain(scope, cfg)
    repl = build(scope, cfg, warm_start='identity')
    repl.load_state_dict(plain.state_dict(), strict=False)  # what init_cfg=Pretrained does
    removed = build(scope, cfg, kind='removed')
    removed.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(2, 3, size, size)
    for out, ref in zip(outputs(repl, x), outputs(removed, x)):
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    # and it can learn: the zeroed coefficients get gradient
    repl.train()
    sum(o.square().mean() for o in repl(x) if torch.is_tensor(o)).backward()
    for _, block in replaced_blocks(repl):
        ends = [getattr(block, COEFFICIENTS)[k] for k in getattr(block, COEFFICIENTS)
                if torch.equal(getattr(block, COEFFICIENTS)[k], torch.zeros(2))]
        assert ends and any(p.grad.abs().sum() > 0 for p in ends)


@pytest.mark.parametrize('case', ['mmdet-resnet', 'mmpretrain-vit', 'mmpretrain-cifar-light'])
def test_activation_fit_reproduces_the_plain_blocks_better_than_identity(case):
    scope, cfg, size = CASES[case]
    plain = pretrained_plain(scope, cfg)
    generator = torch.Generator().manual_seed(1)
    images = [torch.randn(8, 3, size, size, generator=generator) for _ in range(3)]
    identity = convert_from_plain(plain, build(scope, cfg, warm_start='identity'), images,
                                  warm_start='identity')
    repl = build(scope, cfg, warm_start='activations')
    fitted = convert_from_plain(plain, repl, images, steps=60, warm_start='activations')
    assert [b.path for b in fitted] == [b.path for b in identity]
    for start, fit in zip(identity, fitted):
        assert fit.fit.error_after < fit.fit.error_before
        assert fit.output_error < start.output_error, fit.path
    # the replaced blocks' norms were re-measured for their synthesised weights
    norms = [(path, name, m) for path, block in replaced_blocks(repl)
             for name, m in block.named_modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    plain_modules = dict(plain.named_modules())
    for path, name, norm in norms:
        twin = plain_modules[f'{path}.{name}'] if f'{path}.{name}' in plain_modules else None
        assert twin is None or not torch.equal(norm.running_var, twin.running_var)


def test_activation_fit_needs_images():
    scope, cfg, _ = CASES['mmdet-resnet']
    repl = build(scope, cfg, warm_start='activations')
    with pytest.raises(ReplError, match='needs batches of training images'):
        convert_from_plain(pretrained_plain(scope, cfg), repl, warm_start='activations')


@pytest.mark.parametrize('case', ['mmpretrain-vit', 'mmseg-vit'])
def test_submodule_coefficients_start_as_the_shortcut_and_train(case):
    """A RepL-ViT with granularity='submodule' must load a plain checkpoint under its default
    warm start (identity), though one pair weighs attention's qkv and output projection."""
    scope, cfg, size = CASES[case]
    plain = pretrained_plain(scope, cfg)
    repl = build(scope, cfg, granularity='submodule')
    repl.load_state_dict(plain.state_dict(), strict=False)
    zero = {f'{path}.{key}' for path, block in replaced_blocks(repl)
            for key, c in block.repl_coefficients.items() if not c.abs().sum()}
    assert zero == {f'{path}.{key}' for path, _ in replaced_blocks(repl)
                    for key in ('attn', 'ffn')}
    inputs = {}

    def record(block, args, out):
        inputs[block] = (args[0], out)

    for _, block in replaced_blocks(repl):
        block.register_forward_hook(record)
    repl.eval()
    outputs = repl(torch.randn(2, 3, size, size))
    assert len(inputs) == len(replaced_blocks(repl))
    for x, out in inputs.values():
        torch.testing.assert_close(out, x)  # the block is its shortcut
    sum(o.square().mean() for o in outputs if torch.is_tensor(o)).backward()
    for path, block in replaced_blocks(repl):
        for key in ('attn', 'ffn'):  # the bias that ends each branch: a first-order gradient
            assert block.repl_coefficients[key].grad.abs().sum() > 0, (path, key)


@pytest.mark.parametrize('repl, message', [
    (dict(warm_start='lstsq'), 'repl.warm_start=.lstsq. is unknown'),
    (dict(budget=0.25), "goes with repl.blocks='auto'"),
    (dict(blocks='auto', budget=0.25), 'run tools/convert.py'),
])
def test_bad_conversion_options_are_named(repl, message):
    scope, cfg, _ = CASES['mmdet-resnet']
    with pytest.raises((ReplError, PlanError), match=message):
        build(scope, cfg, **repl)


@pytest.mark.parametrize('granularity', ['tensor', 'channel', 'submodule'])
def test_warm_start_fits_coefficients_to_pretrained_weights(granularity):
    torch.manual_seed(0)
    pretrained = ToyNet()
    with torch.no_grad():  # block 1 is exactly 0.3 * block 0 + 0.7 * block 2, block 3 is not
        for name, param in pretrained.blocks[1].named_parameters():
            param.copy_(0.3 * pretrained.blocks[0].get_parameter(name)
                        + 0.7 * pretrained.blocks[2].get_parameter(name))
    messages = []
    net = ToyNet()
    replace_blocks(net, [('blocks', 'blocks')],
                   ReplacementConfig(granularity=granularity, warm_start='weights'),
                   log=messages.append)
    result = net.load_state_dict(pretrained.state_dict(), strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for name, param in pretrained.blocks[1].named_parameters():
        owner, tensor = name.split('.')
        torch.testing.assert_close(getattr(net.blocks[1].get_submodule(owner), tensor), param,
                                   atol=1e-5, rtol=1e-4)
    assert len(messages) == 1
    assert 'blocks.1 0.000' in messages[0] and 'blocks.3 0.' in messages[0]
    assert 'blocks.3 0.000' not in messages[0]


class BiasFreeBlock(nn.Module):
    """A residual MLP block without biases: its branch ends in ``branch.2.weight``."""

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Linear(dim, dim, bias=False), nn.ReLU(),
                                    nn.Linear(dim, dim, bias=False))

    def forward(self, x):
        return x + self.branch(x)


def test_identity_start_without_a_gradient_is_refused_with_every_way_out():
    """One 'submodule' pair weighs the whole branch: zero, the branch's output is O(c^2) when no
    bias ends it, so the pair would never move."""
    net = nn.Module()
    net.blocks = nn.Sequential(*[BiasFreeBlock() for _ in range(3)])
    plain = copy.deepcopy(net).state_dict()
    replace_blocks(net, [('blocks', 'blocks')], ReplacementConfig.from_dict(
        dict(granularity='submodule', warm_start='identity')),
        residual_ends=lambda block: ['branch.2.weight'])
    with pytest.raises(ReplError, match=r"\['branch'\] also weigh tensors inside it and no bias "
                                        r"ends it.*granularity='tensor' or 'channel'.*"
                                        r"warm_start='weights'.*warm_start='activations'.*"
                                        r'warm_start=False'):
        net.load_state_dict(plain, strict=False)


def replaced(warm_start, kind='fused'):
    torch.manual_seed(0)
    net = ToyNet()
    replace_blocks(net, [('blocks', 'blocks')],
                   ReplacementConfig(kind=kind, warm_start=warm_start),
                   light_spec=lambda block: LightSpec('depthwise', 'conv.weight', 'bn'),
                   residual_ends=lambda block: ['bn.weight', 'bn.bias'])
    return net


@pytest.mark.parametrize('kind', ['fused', 'light'])
@pytest.mark.parametrize('warm_start', [None, 'weights', 'identity', 'activations'])
def test_the_guard_starts_a_plain_load_exactly_as_the_warm_start_module_computes(kind,
                                                                                 warm_start):
    """Loading a plain state dict gives the coefficients ``start_from_plain_state_dict``
    writes, and nothing else: the guard computes no start of its own."""
    torch.manual_seed(1)
    plain = ToyNet().state_dict()
    loaded = replaced(warm_start, kind)
    loaded.load_state_dict(plain, strict=False)

    expected_model = replaced(warm_start, kind)
    state = copy.deepcopy(plain)
    sentence = start_from_plain_state_dict(expected_model, warm_start, kind,
                                           {k: k for k in state}, state, '')
    for path, block in replaced_blocks(loaded):
        for key, value in getattr(block, COEFFICIENTS).items():
            name = f'{path}.{COEFFICIENTS}.{key}'
            want = state.get(name, getattr(expected_model.get_submodule(path),
                                           COEFFICIENTS)[key])
            torch.testing.assert_close(value, want, rtol=0, atol=0)
    if warm_start in ('identity', 'activations'):
        assert 'shortcut' in sentence
        for path, block in replaced_blocks(loaded):
            for key in residual_keys(block):
                assert not getattr(block, COEFFICIENTS)[key].any()
    elif warm_start == 'weights':
        assert ('least squares' in sentence) == (kind == 'fused')
    else:
        assert sentence == ''
