"""Tests of repl_mm.engine.checkpoint_files (today repl_mm/engine/checkpoint.py): reading
checkpoints."""
import torch
from mmengine.logging import MessageHub

from repl_mm.engine import read_checkpoint, trusted_checkpoint_globals


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
