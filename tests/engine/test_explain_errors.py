"""Tests of repl_mm.engine.explain_errors: known failures re-raised as errors that name the file
and the fix (end to end through the tools: tests/integration/test_reliability_bad_input.py)."""
from repl_mm.engine.explain_errors import CorruptCheckpointError, corrupt_checkpoint


def test_a_corrupt_checkpoint_is_named_with_the_reason_and_what_to_do():
    error = corrupt_checkpoint('work/iter_4.pth', 'unexpected end of file')
    assert isinstance(error, CorruptCheckpointError) and error.path == 'work/iter_4.pth'
    assert 'work/iter_4.pth' in str(error) and 'unexpected end of file' in str(error)
    assert 'resume from an earlier one' in str(error)
