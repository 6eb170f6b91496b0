"""Tests of repl_core.state_dict_guard, first the checkpoint-refusal matrix: every family at a tiny
width, a checkpoint of each setting loaded into a model of each setting, by every loading path.

A checkpoint loads exactly when it was made with the settings that give the model's function:
the same plan, kind and, per replaced block, the same coefficient record and keys (an adapter
setting that no block uses changes nothing); a plain checkpoint loads into every model. Anything
else is refused with ``CheckpointMismatchError``, and a refused load leaves the model as it was.
The settings include a plan drawn at random (seeded) for each family.
"""
import copy
import random
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint

import repl_mm  # noqa: F401
from repl_core import (COEFFICIENTS, CheckpointMismatchError, PlanError, ReplacementConfig,
                       replace_blocks, replaced_blocks)
from repl_mm.models import plain_model_cfg

from conftest import LogRecords, perturb
from mm_cases import SMALL_RESNETS, SMALL_SWIN, SMALL_VIT, build_backbone
from toy_net import ToyNet, conv_net, replaced_toy

pytestmark = pytest.mark.usefixtures('one_thread')

FAMILIES = {
    'mmdet-resnet': ('mmdet', dict(type='RepLResNet', depth=34, base_channels=8)),
    'mmseg-resnetv1c': ('mmseg', dict(type='RepLResNetV1c', depth=34, stem_channels=8,
                                      base_channels=8)),
    'mmpretrain-cifar': ('mmpretrain', dict(type='RepLCIFARResNet', depth=20, base_channels=4,
                                            stem_channels=4)),
    'mmdet-swin': ('mmdet', dict(type='RepLSwinTransformer', embed_dims=16, depths=(2, 2, 4, 2),
                                 num_heads=(1, 2, 2, 4), window_size=4)),
    'mmpretrain-vit': ('mmpretrain', dict(type='RepLVisionTransformer', img_size=16,
                                          patch_size=4, arch=dict(embed_dims=16, num_layers=5,
                                                                  num_heads=2,
                                                                  feedforward_channels=32))),
}
CNN = ('mmdet-resnet', 'mmseg-resnetv1c', 'mmpretrain-cifar')
SETTINGS = {
    'default': dict(),
    'seeded-plan': None,  # drawn per family
    'light': dict(kind='light'),
    'light-weight-norm': dict(kind='light', light_norm='weight'),
    'removed': dict(kind='removed'),
    'channel': dict(granularity='channel'),
    'submodule': dict(granularity='submodule'),
    'projection': dict(adapter='projection'),
    'average': dict(adapter='average'),
}


def build(family: str, repl: Optional[dict]):
    """The family's RepL backbone with ``repl`` (its plain twin if ``None``), seeded."""
    scope, cfg = FAMILIES[family]
    init_default_scope(scope)
    torch.manual_seed(0)
    if repl is None:
        return MODELS.build(plain_model_cfg(dict(backbone=dict(cfg)))['backbone'])
    return MODELS.build(dict(cfg, repl=dict(repl, warm_start=False)))


def seeded_plan(family: str, seed: int = 0) -> Dict[str, List[int]]:
    """A valid plan drawn at random: never two adjacent blocks, never the network's ends."""
    probe = build(family, dict(blocks={}))
    stages = [(name, len(probe.get_submodule(path))) for name, path in probe.repl_stages()]
    chain = [(name, i) for name, depth in stages for i in range(depth)]
    rng = random.Random(f'{family}-{seed}')
    for _ in range(100):
        chosen = []
        for position in range(1, len(chain) - 1):
            if rng.random() < 0.4 and (not chosen or chosen[-1] < position - 1):
                chosen.append(position)
        plan = {name: [i for p, (stage, i) in enumerate(chain) if stage == name and p in chosen]
                for name, _ in stages}
        if chosen and plan != probe.repl_plan.to_dict():
            try:
                build(family, dict(blocks=plan))
            except PlanError:  # a block without a counterpart in a neighbour
                continue
            return plan
    raise AssertionError(f'no valid plan drawn for {family}')


def settings_of(family: str) -> Dict[str, dict]:
    settings = {}
    for name, repl in SETTINGS.items():
        if name == 'seeded-plan':
            repl = dict(blocks=seeded_plan(family))
        if name == 'light-weight-norm' and family not in CNN:
            continue  # transformers refuse it (tests/core/test_light.py)
        settings[name] = repl
    return settings


def identity(model) -> tuple:
    """What a checkpoint must match: the plan, and per replaced block its coefficient record;
    and every state-dict key."""
    specs = tuple((path, getattr(block, COEFFICIENTS).spec)
                  for path, block in replaced_blocks(model))
    return (model.repl_config.kind, model.repl_plan.replaced, specs,
            tuple(sorted(model.state_dict())))


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """Per family: ``{setting: (identity, state dict, file)}``, the weights perturbed."""
    root = tmp_path_factory.mktemp('refusal_matrix')
    made = {}
    for family in FAMILIES:
        made[family] = {}
        for name, repl in {'plain': None, **settings_of(family)}.items():
            model = build(family, repl)
            perturb(model, seed=len(made[family]))
            state = copy.deepcopy(model.state_dict())
            path = root / f'{family}-{name}.pth'
            torch.save({'state_dict': state}, path)
            made[family][name] = (None if repl is None else identity(model), state, path)
    return made


def load(path: str, model, state: dict, file) -> None:
    if path == 'load_state_dict':
        model.load_state_dict(state, strict=False)
    else:  # mmengine's load_checkpoint: load_from, resume, init_cfg=Pretrained
        load_checkpoint(model, str(file), map_location='cpu', strict=False, logger='silent')


@pytest.mark.parametrize('path', ['load_state_dict',
                                  pytest.param('load_checkpoint', marks=pytest.mark.slow)])
@pytest.mark.parametrize('family', FAMILIES)
def test_a_checkpoint_loads_exactly_where_its_settings_give_the_models_function(
        checkpoints, family, path):
    for model_setting, repl in settings_of(family).items():
        model = build(family, repl)
        for source, (theirs, state, file) in checkpoints[family].items():
            before = copy.deepcopy(model.state_dict())
            case = f'{source} checkpoint -> {model_setting} model'
            if theirs is None or theirs == identity(model):
                load(path, model, state, file)
                if theirs is not None:  # a RepL checkpoint of these settings: exactly it
                    ours = model.state_dict()
                    assert all(torch.equal(ours[k], v) for k, v in state.items()), case
            else:
                with pytest.raises(CheckpointMismatchError):
                    load(path, model, state, file)
                after = model.state_dict()
                assert all(torch.equal(after[k], v) for k, v in before.items()), case


def test_loading_plain_state_dict_drops_replaced_weights_and_logs_once():
    messages = []
    torch.manual_seed(0)
    net = ToyNet()
    replace_blocks(net, [('blocks', 'blocks')], ReplacementConfig(warm_start=False),
                   log=messages.append)
    plain = ToyNet().state_dict()
    result = net.load_state_dict(plain, strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == sorted(  # the settings are the model's own
        k for k, _ in net.named_parameters() if COEFFICIENTS in k)
    assert len(messages) == 1 and 'blocks.1, blocks.3' in messages[0]
    torch.testing.assert_close(net.blocks[0].conv.weight, plain['blocks.0.conv.weight'])
    torch.testing.assert_close(net.blocks[1].bn.running_var, plain['blocks.1.bn.running_var'])
    torch.testing.assert_close(net.blocks[1].repl_coefficients['conv_weight'],
                               torch.tensor([0.5, 0.5]))


def test_loading_another_plan_fails_clearly():
    net, _ = replaced_toy()
    other = ToyNet(depth=5)
    replace_blocks(other, [('blocks', 'blocks')], ReplacementConfig(blocks={'blocks': [2]}))
    with pytest.raises(CheckpointMismatchError) as error:
        other.load_state_dict(net.state_dict(), strict=False)
    assert error.value.checkpoint_blocks == ['blocks.1', 'blocks.3']
    assert error.value.model_blocks == ['blocks.2']
    channel, _ = replaced_toy(granularity='channel')
    with pytest.raises(CheckpointMismatchError) as error:
        channel.load_state_dict(net.state_dict())
    assert (error.value.checkpoint_spec.granularity, error.value.model_spec.granularity) == \
        ('tensor', 'channel')


def test_checkpoint_of_the_other_light_norm_is_refused():
    # the two conv surrogates share the extra state (kind, granularity, adapter) but not their
    # coefficient keys: loading one into the other would leave its coefficients at their init
    state = conv_net(kind='light', light_norm='weight').state_dict()
    net = conv_net(kind='light')
    with pytest.raises(CheckpointMismatchError, match='repl.light_norm') as error:
        net.load_state_dict(state, strict=False)
    assert error.value.checkpoint_keys == ['scale', 'shift', 'weight']
    assert error.value.model_keys == ['conv_weight', 'norm_bias', 'norm_weight']


def _save(model, path: Path) -> str:
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.mark.parametrize('scope, cfg, saved, loaded, difference', [
    ('mmseg', SMALL_SWIN, dict(granularity='tensor'), dict(granularity='submodule'),
     "granularity='tensor' (this model: 'submodule')"),
    ('mmpretrain', SMALL_VIT, dict(granularity='tensor'), dict(granularity='submodule'),
     "granularity='tensor' (this model: 'submodule')"),
    ('mmdet', SMALL_RESNETS['mmdet'], dict(kind='fused'), dict(kind='light'),
     "kind='fused' (this model: 'light')"),
    ('mmseg', SMALL_RESNETS['mmseg'], dict(blocks={'layer1': [2]}, adapter='average'),
     dict(blocks={'layer1': [2]}), "adapter='average' (this model: 'slice_pad')"),
    ('mmdet', SMALL_RESNETS['mmdet'], dict(kind='fused'), dict(kind='removed'), "kind='removed'"),
    ('mmdet', SMALL_RESNETS['mmdet'], dict(kind='removed'), dict(kind='fused'), "kind='removed'"),
])
def test_a_repl_checkpoint_of_other_settings_is_refused_on_the_non_strict_path(
        scope, cfg, saved, loaded, difference, tmp_path):
    checkpoint = _save(build_backbone(scope, cfg, repl=saved), tmp_path / 'repl.pth')
    with pytest.raises(CheckpointMismatchError, match=difference.replace('(', r'\(')
                       .replace(')', r'\)')):
        load_checkpoint(build_backbone(scope, cfg, repl=loaded), checkpoint, map_location='cpu')
    pretrained = dict(cfg, repl=loaded, init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    with pytest.raises(CheckpointMismatchError):
        build_backbone(scope, pretrained).init_weights()


def test_an_adapter_setting_that_changes_nothing_loads(tmp_path):
    """layer3[3]'s neighbours have its shapes: no adapter runs, so the adapter setting does not
    change the function, and the checkpoint loads."""
    blocks = {'layer3': [3]}
    saved = build_backbone('mmdet', SMALL_RESNETS['mmdet'],
                           repl=dict(blocks=blocks, adapter='average'))
    checkpoint = _save(saved, tmp_path / 'repl.pth')
    model = build_backbone('mmdet', SMALL_RESNETS['mmdet'], repl=dict(blocks=blocks))
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True)


@pytest.mark.parametrize('kind, warm_start', [('removed', True), ('light', True),
                                              ('light', 'weights')])
def test_a_plain_checkpoint_in_a_removed_or_light_model(kind, warm_start, tmp_path):
    """Removed: the deleted blocks' tensors are dropped with one log line (a strict load
    succeeds). Light: the surrogate starts as its shortcut (its default warm start); the block's
    own weights cannot initialise it, which the log line says where they are asked to
    (``warm_start='weights'``), and the coefficients keep repl.init."""
    plain = build_backbone('mmdet', dict(SMALL_RESNETS['mmdet'], type='ResNet'))
    checkpoint = _save(plain, tmp_path / 'plain.pth')
    model = build_backbone('mmdet', SMALL_RESNETS['mmdet'],
                           repl=dict(kind=kind, warm_start=warm_start))
    handler = LogRecords()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=kind == 'removed')
    finally:
        logger.removeHandler(handler)
    blocks = ['layer1.1', 'layer2.1', 'layer3.1', 'layer3.3', 'layer4.1']
    lines = [m for m in handler.messages if all(b in m for b in blocks)]
    assert len(lines) == 1
    torch.testing.assert_close(model.layer1[0].conv1.weight, plain.layer1[0].conv1.weight)
    if kind == 'light':
        zero = {n.rsplit('.', 1)[1] for n, p in model.named_parameters()
                if COEFFICIENTS in n and torch.equal(p, torch.zeros(2))}
        init = {n.rsplit('.', 1)[1] for n, p in model.named_parameters()
                if COEFFICIENTS in n and torch.equal(p, torch.tensor([0.5, 0.5]))}
        if warm_start == 'weights':
            assert 'Warm start' not in lines[0] and not zero and init
        else:
            assert zero == {'norm_weight', 'norm_bias'} and init == {'conv_weight'}
