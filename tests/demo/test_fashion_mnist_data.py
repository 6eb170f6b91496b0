"""Tests of repl_mm.demo.fashion_mnist_data: a Fashion-MNIST subset in its own idx files."""
from __future__ import annotations

import numpy as np
import pytest

from repl_mm.demo import DEFAULT_FMNIST_DIR, make_fashion_mnist_demo
from repl_mm.demo.fashion_mnist_source import decode_idx, missing_files, read_split


@pytest.mark.skipif(bool(missing_files(DEFAULT_FMNIST_DIR)),
                    reason='needs Debian dataset-fashion-mnist')
def test_fashion_mnist_subset_holds_the_first_items(tmp_path):
    summary = make_fashion_mnist_demo(tmp_path, num_train=20, num_val=10)
    for split, count in (('train', 20), ('val', 10)):
        images, labels = read_split(DEFAULT_FMNIST_DIR, split)
        paths = summary['splits'][split]['paths']
        written = [decode_idx((tmp_path / paths[key]).read_bytes(), paths[key])
                   for key in ('images', 'labels')]
        np.testing.assert_array_equal(written[0], images[:count])
        np.testing.assert_array_equal(written[1], labels[:count])
        assert summary['splits'][split]['num_images'] == count
        assert sum(summary['splits'][split]['per_class'].values()) == count
