"""Shared fixtures: generated demo data, the repository root, subprocess runner for tools."""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def coco_demo(tmp_path_factory) -> Path:
    """A tiny generated COCO-layout set: 8 train and 4 val images of 96x96 (session-wide)."""
    from repl_mm.demo import make_coco_demo
    out = tmp_path_factory.mktemp('demo_coco')
    make_coco_demo(str(out), num_train=8, num_val=4, seed=0, image_size=96)
    return out


def run_tool(*args: str, cwd: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python tools/<args>`` as a user would, on 2 threads; return the finished process."""
    env = dict(os.environ, OMP_NUM_THREADS='2', PYTHONWARNINGS='ignore')
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f'{args} failed ({result.returncode}):\n{result.stdout[-4000:]}\n'
                             f'{result.stderr[-4000:]}')
    return result


def rename_categories(ann_file: Path, names: dict) -> None:
    """Rename the categories of a generated COCO json (e.g. to COCO's own class names)."""
    data = json.loads(ann_file.read_text())
    for category in data['categories']:
        category['name'] = names[category['name']]
    ann_file.write_text(json.dumps(data))


class LogRecords(logging.Handler):
    """Collects the messages of the log records it handles."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope='module')
def one_thread():
    """For modules of in-process runs of tiny models: one thread is as fast, and steadier on a busy
    machine (``pytestmark = pytest.mark.usefixtures('one_thread')``)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
