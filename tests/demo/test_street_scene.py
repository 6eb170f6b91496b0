"""Tests of repl_mm.demo.street_scene: one procedural street scene and its Cityscapes labels."""
import numpy as np

from repl_mm.demo.street_scene import render_scene


def test_the_same_generator_state_gives_the_same_scene_and_consistent_labels():
    first = render_scene(np.random.default_rng(3), (48, 96), None)
    again = render_scene(np.random.default_rng(3), (48, 96), None)
    for a, b in zip(first[:3], again[:3]):
        np.testing.assert_array_equal(a, b)
    assert first.instances == again.instances
    assert first.rgb.shape == (48, 96, 3) and first.rgb.dtype == np.uint8
    assert first.label_ids.shape == (48, 96) and first.instance_ids.dtype == np.uint16
    # off instances an instance id is the label id; on them, label id * 1000 + k
    np.testing.assert_array_equal(first.instance_ids // 1000 * (first.instance_ids >= 1000)
                                  + first.instance_ids * (first.instance_ids < 1000),
                                  first.label_ids)
    assert len(np.unique(first.label_ids)) > 3  # road, sidewalk, sky and more
