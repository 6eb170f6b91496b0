"""``repl_mm.engine.cli``: ``--cfg-options`` reads dicts with the parser ``repl.blocks`` uses."""
import argparse

import pytest

from repl_core import ReplacementConfig
from repl_mm.engine.cli import add_cfg_options


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
