"""Tests of repl_mm.models.plain_twin: a RepL model's config with the upstream backbone class."""
import pytest

from repl_core import ReplError
from repl_mm.models import plain_model_cfg


def test_the_twin_drops_repl_and_keeps_every_other_argument():
    model = dict(type='ImageClassifier', backbone=dict(type='mmpretrain.RepLResNet', depth=50,
                                                        frozen_stages=1, repl=dict(kind='light')))
    twin = plain_model_cfg(model)
    assert twin == dict(type='ImageClassifier',
                        backbone=dict(type='mmpretrain.ResNet', depth=50, frozen_stages=1))
    assert model['backbone']['repl'] == dict(kind='light')  # the given config is left alone


def test_a_model_without_a_repl_backbone_is_refused():
    with pytest.raises(ReplError, match="backbone type 'ResNet'"):
        plain_model_cfg(dict(backbone=dict(type='ResNet', depth=50)))
