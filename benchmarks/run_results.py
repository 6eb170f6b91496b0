"""What a finished training run measured, read back from its work dir's JSON log."""
import json
import statistics
from typing import Any, Dict

from repl_mm.analysis.plot import read_training_log, scalar_logs

MEMORY_KEYS = ('cost/cuda_peak_allocated_mb', 'cost/cpu_peak_rss_mb', 'memory')


def last_validation(work_dir: str) -> Dict[str, float]:
    """The metrics of the last validation line (records without ``iter``)."""
    metrics: Dict[str, float] = {}
    for path in scalar_logs(work_dir):
        with open(path) as file:
            for line in file:
                record = json.loads(line) if line.strip() else {}
                if record and 'iter' not in record:
                    metrics = {k: v for k, v in record.items() if isinstance(v, (int, float))}
    return metrics


def summarize_run(work_dir: str, skip_first: int = 1) -> Dict[str, Any]:
    """Validation metrics, median / min / max seconds per training iteration (logged averages,
    the first ``skip_first`` log lines left out as warm-up), peak memory (MiB) and trainable
    parameters as logged by ``TrainingCostHook``."""
    curves = read_training_log(work_dir)
    times = curves.get('time', ([], []))[1][skip_first:] or curves.get('time', ([], []))[1]
    summary: Dict[str, Any] = dict(metrics=last_validation(work_dir))
    if times:
        summary.update(s_per_iter=statistics.median(times), s_per_iter_min=min(times),
                       s_per_iter_max=max(times))
    for key in MEMORY_KEYS:
        if key in curves:
            summary.update(peak_memory_mb=max(curves[key][1]), memory_key=key)
            break
    for key in ('params_trainable', 'params_synthesised'):
        if f'cost/{key}' in curves:
            summary[key] = int(curves[f'cost/{key}'][1][-1])
    return summary
