"""Tests of repl_core.errors: the errors repl-mm raises on bad input."""
import pytest

from repl_core import AdapterError, CheckpointMismatchError, PlanError, ReplError


def test_an_error_keeps_the_facts_its_message_names():
    error = ReplError('training stopped at iteration 3', iteration=3, last_checkpoint='iter_2.pth')
    assert str(error) == 'training stopped at iteration 3'
    assert (error.iteration, error.last_checkpoint) == (3, 'iter_2.pth')


@pytest.mark.parametrize('kind', [PlanError, AdapterError, CheckpointMismatchError])
def test_every_error_is_a_repl_error_and_a_value_error(kind):
    with pytest.raises(ReplError, match='bad'):
        raise kind('bad')
    assert issubclass(kind, ValueError)
