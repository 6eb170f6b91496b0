"""Tests of repl_mm.engine.checkpoint_files: reading checkpoints, the last complete one of a run."""
import torch
from mmengine.logging import MessageHub

from repl_mm.engine import read_checkpoint, trusted_checkpoint_globals
from repl_mm.engine.checkpoint_files import (CorruptCheckpointError, corrupt_checkpoint,
                                             last_complete_checkpoint)


def test_trusted_globals_nest(tmp_path):
    """An inner block must not remove the globals the outer one allowed (torch's safe_globals
    removes its globals when it exits): tools/test.py's Runner loads the checkpoint after the
    tool has read it once."""
    path = tmp_path / 'runner.pth'
    hub = MessageHub.get_instance('test_trusted_globals_nest')
    hub.update_scalar('train/loss', 1.0)  # a HistoryBuffer, as in every Runner checkpoint
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'message_hub': hub.state_dict()}, path)
    with trusted_checkpoint_globals():
        read_checkpoint(str(path))  # its own block, nested
        assert torch.load(path)['message_hub']['log_scalars']['train/loss'].current() == 1.0


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
