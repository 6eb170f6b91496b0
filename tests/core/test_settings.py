"""Tests of repl_core.settings: the repl=dict(...) argument of a RepL backbone, checked when the
backbone is built; every allowed value and default, resolved once."""
import dataclasses

import pytest
import torch

from repl_core import (ADAPTERS, GRANULARITIES, KINDS, LIGHT_NORMS, WARM_STARTS, ReplacementConfig,
                       ReplError, build_adapter, default_warm_start, parse_dict_literal)
from repl_core.light import LightSpec, build_light_surrogate
from repl_core.settings import DEFAULT_WARM_START, FAMILIES, FAMILY_WARM_START
from repl_core.synthesis import coefficient_key


def test_unknown_options_and_values_are_rejected():
    with pytest.raises(ReplError, match=r"unknown option\(s\) \['blocks_'\]"):
        ReplacementConfig.from_dict({'blocks_': {}})
    with pytest.raises(ReplError, match=r"repl.granularity='row' is unknown"):
        ReplacementConfig.from_dict({'granularity': 'row'})


@pytest.mark.parametrize('family', (None, ) + FAMILIES)
@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('given', [True, False, *WARM_STARTS])
def test_warm_start_is_resolved_once_when_the_settings_are_built(kind, family, given):
    config = ReplacementConfig.from_dict(dict(kind=kind, warm_start=given), family=family)
    expected = {True: default_warm_start(kind, family), False: None}.get(given, given)
    assert config.warm_start == expected
    assert config.warm_start is None or config.warm_start in WARM_STARTS
    assert dataclasses.replace(config, granularity='channel').warm_start == expected


def test_the_family_default_differs_from_the_kind_default_only_where_the_table_says():
    assert default_warm_start('fused') == DEFAULT_WARM_START['fused'] == 'activations'
    assert default_warm_start('fused', 'transformer') == 'identity'
    assert default_warm_start('light', 'transformer') == 'identity'
    assert default_warm_start('removed', 'transformer') is None
    assert default_warm_start('fused', 'resnet') == 'activations'
    assert set(FAMILY_WARM_START) <= set(FAMILIES)


def test_family_is_set_by_the_backbone_class_not_by_repl():
    with pytest.raises(ReplError, match=r"unknown option\(s\) \['family'\]"):
        ReplacementConfig.from_dict(dict(family='transformer'))
    with pytest.raises(ReplError, match=r"family='cnn' \(a backbone class's repl_family\)"):
        ReplacementConfig(family='cnn')


@pytest.mark.parametrize('text, blocks', [("{'layer3': [1, 3]}", {'layer3': [1, 3]}),
                                          (' {0: [1]} ', {0: [1]}), ('None', None),
                                          ('auto', 'auto')])
def test_blocks_given_as_text_are_parsed_by_the_one_parser(text, blocks):
    budget = 0.2 if blocks == 'auto' else None
    assert ReplacementConfig.from_dict(dict(blocks=text, budget=budget)).blocks == blocks


@pytest.mark.parametrize('text', ['[1, 3]', "{'layer3': [1, 3]", 'layer3'])
def test_blocks_text_that_is_no_dict_is_refused(text):
    with pytest.raises(ReplError, match=r'repl\.blocks=.*is not a Python dict literal'):
        ReplacementConfig.from_dict(dict(blocks=text))
    with pytest.raises(ReplError, match='is not a Python dict literal'):
        parse_dict_literal(text, 'repl.blocks')


@pytest.mark.parametrize('repl, match', [
    (dict(blocks='auto'), r"needs repl.budget.*got None"),
    (dict(blocks='auto', budget=1.5), r"needs repl.budget.*got 1.5"),
    (dict(blocks='auto', budget=True), r"needs repl.budget.*got True"),
    (dict(blocks='auto', budget='0.2'), r"needs repl.budget"),
    (dict(budget=0.2), r"goes with repl.blocks='auto'"),
    (dict(kind='removed', recompute=True), 'nothing to recompute'),
    (dict(warm_start='fit'), r"repl.warm_start='fit' is unknown"),
    (dict(init=(1, 2, 3)), 'must be a pair'),
    (dict(kind='lite'), r"repl.kind='lite' is unknown; choose one of \('fused'"),
    (dict(adapter='pad'), r"repl.adapter='pad' is unknown"),
    (dict(granularity='block'), r"repl.granularity='block' is unknown"),
    (dict(light_norm='layer'), r"repl.light_norm='layer' is unknown"),
])
def test_bad_settings_are_refused_with_the_fix(repl, match):
    with pytest.raises(ReplError, match=match):
        ReplacementConfig.from_dict(repl)


def test_auto_plan_with_a_budget_needs_training_data():
    assert ReplacementConfig.from_dict(dict(blocks='auto', budget=0.3,
                                            warm_start='identity')).needs_training_data
    assert ReplacementConfig().needs_training_data  # fused: the activation fit
    assert not ReplacementConfig(warm_start='identity').needs_training_data


def test_every_allowed_value_is_implemented():
    """The vocabularies live in settings; each value must work in the module that does it."""
    source, target = torch.randn(4, 6, 3, 3), (8, 6, 3, 3)
    for adapter in ADAPTERS:
        assert build_adapter(adapter, source.shape, target)(source).shape == target
    norm = torch.nn.BatchNorm2d(4)
    for light_norm in LIGHT_NORMS:
        surrogate = build_light_surrogate(LightSpec('depthwise', 'conv2.weight', 'bn'), norm,
                                          (4, 4, 3, 3), light_norm)
        assert surrogate(torch.randn(2, 4, 5, 5)).shape == (2, 4, 5, 5)
    keys = {g: coefficient_key('attn.proj.weight', g) for g in GRANULARITIES}
    assert keys == {'tensor': 'attn_proj_weight', 'channel': 'attn_proj_weight',
                    'submodule': 'attn'}
