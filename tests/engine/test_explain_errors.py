"""Tests of repl_mm.engine.explain_errors: known failures re-raised as errors that name the file
and the fix (end to end through the tools: tests/integration/test_reliability_bad_input.py)."""
from repl_mm.engine.errors import (CorruptCheckpointError, corrupt_checkpoint,
                                   last_complete_checkpoint)


def test_the_last_complete_checkpoint_is_the_one_named_that_still_exists(tmp_path):
    assert last_complete_checkpoint(None) is None
    assert last_complete_checkpoint(str(tmp_path)) is None
    checkpoint = tmp_path / 'iter_4.pth'
    (tmp_path / 'last_checkpoint').write_text(f'{checkpoint}\n')
    assert last_complete_checkpoint(str(tmp_path)) is None  # named, but removed since
    checkpoint.write_bytes(b'weights')
    assert last_complete_checkpoint(str(tmp_path)) == str(checkpoint)


def test_a_corrupt_checkpoint_is_named_with_the_reason_and_what_to_do():
    error = corrupt_checkpoint('work/iter_4.pth', 'unexpected end of file')
    assert isinstance(error, CorruptCheckpointError) and error.path == 'work/iter_4.pth'
    assert 'work/iter_4.pth' in str(error) and 'unexpected end of file' in str(error)
    assert 'resume from an earlier one' in str(error)
