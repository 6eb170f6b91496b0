"""Tests of repl_mm.engine.explain_errors: known failures re-raised as errors that name the file
and the fix (end to end through the tools: tests/integration/test_reliability_bad_input.py)."""
import errno
import json

import pytest
from mmengine.config import Config

from repl_mm.engine.checkpoint_files import CorruptCheckpointError
from repl_mm.engine.explain_errors import AnnotationFileError, DiskFullError, explain_errors


def test_a_broken_annotation_file_is_named(tmp_path):
    (tmp_path / 'train.json').write_text('{"images": [')
    cfg = Config(dict(train_dataloader=dict(dataset=dict(data_root=str(tmp_path),
                                                         ann_file='train.json'))))
    with pytest.raises(AnnotationFileError, match=r'train\.json .*replace it with a complete'):
        with explain_errors(cfg):
            json.loads((tmp_path / 'train.json').read_text())


def test_a_full_disk_names_the_last_complete_checkpoint(tmp_path):
    (tmp_path / 'iter_2.pth').write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    with pytest.raises(DiskFullError) as raised:
        with explain_errors(Config(dict(work_dir=str(tmp_path)))):
            raise OSError(errno.ENOSPC, 'No space left on device')
    assert raised.value.last_checkpoint == str(tmp_path / 'iter_2.pth')


def test_an_unreadable_checkpoint_is_named_corrupt(tmp_path):
    with pytest.raises(CorruptCheckpointError, match='resume from an earlier one'):
        with explain_errors(Config(dict(load_from=str(tmp_path / 'iter_4.pth')))):
            raise RuntimeError('PytorchStreamReader failed reading zip archive')
