"""Tests of repl_mm.demo.generator_record: the record that lets a generator skip an up-to-date
set and refuse to clobber foreign data."""
import pytest

from repl_mm.demo.generator_record import claim, finish, up_to_date

PARAMS = dict(generator='demo', version=1, source='procedural', size=(4, 4))
SPLITS = dict(train=dict(num_images=1, per_class={'bag': 1}, paths={'img': 'train/a.png'}))


def test_a_finished_set_is_up_to_date_until_its_params_or_files_change(tmp_path):
    out = tmp_path / 'set'
    claim(out, PARAMS, owned=[out / 'train'], overwrite=False)
    assert up_to_date(out, PARAMS, []) is None  # still in progress
    (out / 'train').mkdir()
    (out / 'train' / 'a.png').write_bytes(b'png')
    assert finish(out, PARAMS, SPLITS)['written']
    summary = up_to_date(out, PARAMS, [out / 'train' / 'a.png'])
    assert summary['written'] is False and summary['params']['size'] == [4, 4]
    assert up_to_date(out, dict(PARAMS, version=2), []) is None
    assert up_to_date(out, PARAMS, [out / 'train' / 'b.png']) is None
    claim(out, PARAMS, owned=[out / 'train'], overwrite=False)  # its own set: cleared
    assert not (out / 'train').exists()


def test_foreign_data_is_not_clobbered(tmp_path):
    (tmp_path / 'mine.txt').write_text('keep')
    with pytest.raises(FileExistsError, match='not empty'):
        claim(tmp_path, PARAMS, owned=[], overwrite=False)
    assert (tmp_path / 'mine.txt').read_text() == 'keep'
