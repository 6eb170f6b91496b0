"""Tests of repl_mm.engine.cli: the tools' shared command line, --cfg-options plans as README spells
them; --cfg-options reads dicts with the parser repl.blocks uses."""
import argparse

import pytest
import torch

import repl_mm  # noqa: F401
from repl_core import ReplacementConfig
from repl_mm.engine.cli import add_cfg_options

from conftest import ROOT
from mm_cases import build_backbone
from reliability_configs.common import TINY, data_options, make_tiny_classification_data, run

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.mark.parametrize('option', ["model.backbone.repl.blocks={'layer3':[1,3]}",
                                    'model.backbone.repl.blocks.layer3=[1,3]'])
def test_readme_plan_options_build_the_plan_they_say(option):
    """README's two spellings of a plan on the command line, parsed as the tools parse them."""
    import argparse

    from mmengine.config import Config

    from repl_mm.engine.cli import add_cfg_options
    parser = argparse.ArgumentParser()
    add_cfg_options(parser)
    cfg = Config.fromfile(str(ROOT / 'configs/mask_rcnn_repl_r50_coco.py'))
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', option]).cfg_options)
    backbone = build_backbone('mmdet', dict(cfg.model.backbone, init_cfg=None))
    assert backbone.repl_plan.to_dict() == {'layer1': [], 'layer2': [], 'layer3': [1, 3],
                                            'layer4': []}


def test_dict_plan_through_cfg_options(tmp_path):
    """``--cfg-options "model.backbone.repl.blocks={'layer2':[1],'layer3':[1]}"``: mmengine's own
    option parser recurses without end on it; the tools' parser must take it as the dict plan it
    spells."""
    data = make_tiny_classification_data(tmp_path / 'data')
    work = tmp_path / 'work'
    run(str(ROOT / 'tools/train.py'), TINY, '--work-dir', str(work), '--cfg-options',
        *data_options(data), "model.backbone.repl.blocks={'layer2':[1],'layer3':[1]}",
        'train_cfg.max_iters=1', 'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1')
    from repl_mm.engine import trusted_checkpoint_globals
    with trusted_checkpoint_globals():
        meta = torch.load(work / 'iter_1.pth', map_location='cpu')['meta']
    assert meta['repl']['backbone']['plan'] == {'layer1': [], 'layer2': [1], 'layer3': [1]}


def parse(*items):
    parser = argparse.ArgumentParser()
    add_cfg_options(parser)
    return parser.parse_args(['--cfg-options', *items]).cfg_options


def test_a_dict_value_reads_as_repl_blocks_given_as_text_reads():
    text = "{'layer3': [1, 3], 'layer4': []}"
    options = parse(f'model.backbone.repl.blocks={text}', 'train_cfg.max_iters=5')
    assert options['model.backbone.repl.blocks'] == {'layer3': [1, 3], 'layer4': []}
    assert options['model.backbone.repl.blocks'] == ReplacementConfig(blocks=text).blocks
    assert options['train_cfg.max_iters'] == 5


def test_a_broken_dict_value_is_one_clear_error(capsys):
    with pytest.raises(SystemExit):
        parse("model.backbone.repl.blocks={'layer3': [1, 3]")
    assert ("--cfg-options model.backbone.repl.blocks=\"{'layer3': [1, 3]\" is not a Python "
            "dict literal") in capsys.readouterr().err
