"""Tests of repl_mm.engine.hooks.rng_state_hook: the random states a checkpoint carries, captured
and restored."""
import io
import random

import numpy as np
import torch

from repl_mm.engine.hooks.rng_state_hook import capture_rng_states, restore_rng_states


def draws():
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)])


def test_rng_states_round_trip_through_a_weights_only_load():
    states = capture_rng_states()
    expected = draws()
    buffer = io.BytesIO()
    torch.save(states, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)  # no allow-list entry needed
    restore_rng_states(loaded)
    assert draws() == expected
