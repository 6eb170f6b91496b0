"""One measurement in a process of its own, and the record of where measurements ran.

Measurements that compare variants of a model run each variant in a fresh process: memory figures
then start from the same state, and some can only be read right in a process's first session
(torch's profiler). The parent writes a JSON spec, the worker a JSON result; a worker that fails
leaves the line of its log that says why.
"""
import json
import os
import os.path as osp
import platform
import subprocess
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch


def run_worker(command: Sequence[str], spec: Dict[str, Any], stem: str,
               env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run ``command + [STEM.spec.json, STEM.result.json]`` with its output in ``STEM.log``.

    Returns the result JSON's content, or ``{'error': <the log's line that says why>, 'log':
    <path>}`` where the worker failed.
    """
    spec_path, result_path, log_path = (f'{stem}.spec.json', f'{stem}.result.json',
                                        f'{stem}.log')
    with open(spec_path, 'w') as file:
        json.dump(spec, file, indent=1)
    if osp.exists(result_path):
        os.remove(result_path)
    with open(log_path, 'w') as log_file:
        process = subprocess.run([*command, spec_path, result_path], stdout=log_file,
                                 stderr=subprocess.STDOUT, env=env)
    if process.returncode != 0 or not osp.exists(result_path):
        with open(log_path) as file:
            lines = [line.rstrip() for line in file if line.strip()]
        error = next((line for line in reversed(lines)
                      if line.startswith(('error:', 'Traceback')) or 'Error' in line),
                     f'exit code {process.returncode}')
        return dict(error=error.removeprefix('error: '), log=log_path)
    with open(result_path) as file:
        return json.load(file)


def run_environment(device: str, started: float, load_start: List[float],
                    ended: float) -> Dict[str, Any]:
    """Where and how long a set of measurements ran: versions, cores, the machine's load
    average at the start and the end, minutes."""
    return dict(torch=torch.__version__, python=platform.python_version(),
                commit=code_commit(), cpu_count=os.cpu_count(),
                cuda_device=torch.cuda.get_device_name(0) if device == 'cuda' else None,
                load_average_start=list(load_start), load_average_end=list(os.getloadavg()),
                wall_minutes=(ended - started) / 60)


def code_commit() -> Optional[str]:
    """The repl-mm commit that ran (``+dirty`` with uncommitted changes to tracked files), or
    None outside a git checkout."""
    here = osp.dirname(osp.abspath(__file__))
    try:
        head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=here, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=here, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ('+dirty' if dirty.strip() else '')


def write_report(out_dir: str, name: str, report: Dict[str, Any], markdown: str,
                 plot: Callable[[Dict[str, Any], str], None]) -> None:
    """``NAME.json`` (every setting and result), ``NAME.md`` and ``NAME.png`` in ``out_dir``."""
    with open(osp.join(out_dir, f'{name}.json'), 'w') as file:
        json.dump(report, file, indent=1)
    with open(osp.join(out_dir, f'{name}.md'), 'w') as file:
        file.write(markdown + '\n')
    plot(report, osp.join(out_dir, f'{name}.png'))
