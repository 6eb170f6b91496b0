"""Wall-clock timing of training steps (forward + backward), robust to a noisy machine."""
import statistics
import time
from typing import Callable, Dict, List

import torch


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_step(step: Callable[[], None], repeats: int = 5, warmup: int = 1) -> Dict[str, float]:
    """Run ``step`` ``warmup + repeats`` times; median, min and max seconds of the timed runs."""
    for _ in range(warmup):
        step()
    _sync()
    times: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        _sync()
        times.append(time.perf_counter() - start)
    return dict(median=statistics.median(times), min=min(times), max=max(times))


def forward_backward(module: torch.nn.Module, *inputs: torch.Tensor) -> Callable[[], None]:
    """A step that runs ``module`` on ``inputs`` and back-propagates the outputs' square mean."""

    def step() -> None:
        module.zero_grad(set_to_none=True)
        out = module(*inputs)
        outs = out if isinstance(out, (tuple, list)) else (out, )
        sum(o.float().square().mean() for o in outs if torch.is_tensor(o)).backward()

    return step
