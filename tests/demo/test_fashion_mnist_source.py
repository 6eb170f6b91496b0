"""Tests of repl_mm.demo.fashion_mnist_source: the Fashion-MNIST files the generators read."""
import numpy as np
import pytest

from repl_mm.demo.fashion_mnist_source import choose_source, decode_idx, encode_idx, missing_files


def test_idx_bytes_round_trip_and_bad_files_are_named():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    data = encode_idx(array)
    np.testing.assert_array_equal(decode_idx(data, 'x.idx'), array)
    with pytest.raises(ValueError, match='x.idx has 23 values'):
        decode_idx(data[:-1], 'x.idx')
    with pytest.raises(ValueError, match='y.idx is not an IDX file'):
        decode_idx(b'\x00\x00\x0d\x01', 'y.idx')


def test_a_folder_without_the_files_gives_procedural_objects(tmp_path):
    assert [p.name for p in missing_files(tmp_path)] == [
        'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
        't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']
    assert choose_source(None) == 'procedural'
    with pytest.warns(RuntimeWarning, match='Fashion-MNIST files missing'):
        assert choose_source(tmp_path) == 'procedural'
