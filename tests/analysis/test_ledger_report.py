"""Tests of repl_mm.analysis.ledger_report: the memory ledger of a config and its variants (the
ledger itself: tests/engine/test_ledger.py; the tool: tests/tools/test_ledger_tool.py)."""
import pytest

from repl_core import ReplError
from repl_mm.analysis.ledger_report import parse_variant


def test_a_variant_is_a_kind_and_its_peers():
    assert parse_variant('fused+cp') == ('fused', ('cp', ))
    assert parse_variant('plain') == ('plain', ())
    with pytest.raises(ReplError, match="Unknown variant 'fused\\+nope'"):
        parse_variant('fused+nope')
