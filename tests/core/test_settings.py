"""Tests of repl_core.settings: the repl=dict(...) argument of a RepL backbone, checked when the
backbone is built."""
import pytest

from repl_core import ReplacementConfig, ReplError


def test_unknown_options_and_values_are_rejected():
    with pytest.raises(ReplError, match=r"unknown option\(s\) \['blocks_'\]"):
        ReplacementConfig.from_dict({'blocks_': {}})
    with pytest.raises(ReplError, match=r"repl.granularity='row' is unknown"):
        ReplacementConfig.from_dict({'granularity': 'row'})
