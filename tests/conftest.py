"""What the tests share: the repository root, running tools as a user would, reading what they
print and write, log capture, generated demo data."""
import contextlib
import importlib.util
import io
import json
import logging
import os
import re
import runpy
import socket
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
FMNIST = Path('/usr/share/datasets/fashion-mnist')  # Debian's dataset-fashion-mnist


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


def metric(stdout: str, name: str) -> float:
    """The value ``tools/test.py`` printed for metric ``name`` (its last ``name: value`` line)."""
    found = re.findall(rf'^{re.escape(name)}: ([-+0-9.eE]+|nan)$', stdout, flags=re.M)
    assert found, f'tools/test.py printed no {name}:\n{stdout[-2000:]}'
    return float(found[-1])


def make_demo_data(*argv: str) -> dict:
    """Run ``tools/make_demo_data.py ARGV`` in this process; return the summary it prints."""
    tool = runpy.run_path(str(ROOT / 'tools/make_demo_data.py'))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert tool['main'](list(argv)) == 0
    first, summary = out.getvalue().split('\n', 1)
    assert first.startswith(f'{argv[0]} demo data ')  # then 'written' or 'up to date, skipped'
    return json.loads(summary)


def plan_in(checkpoint: Path) -> dict:
    """The replacement plan that ``ReplCheckpointHook`` recorded in a checkpoint."""
    import torch

    from repl_mm.engine import trusted_checkpoint_globals
    with trusted_checkpoint_globals():
        meta = torch.load(checkpoint, map_location='cpu')['meta']
    return meta['repl']['backbone']['plan']


def perturb(model, seed: int = 0, scale: float = 0.05) -> None:
    """Move every weight and norm statistic of ``model`` off its initial value, as training
    would (so that tests of loading and conversion compare something)."""
    import torch
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1, generator=generator)
                m.running_var.uniform_(0.5, 1.5, generator=generator)


def loss_and_grads(model, x):
    """One backward of the outputs' mean squares: the loss and every parameter's gradient."""
    model.zero_grad(set_to_none=True)
    out = model(x)
    loss = sum(o.square().mean() for o in (out if isinstance(out, tuple) else (out, )))
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def run_tool_here(tool: str, *argv: str) -> Tuple[int, str, str]:
    """Run ``tools/<tool>`` in this process as ``python tools/<tool> ARGV`` would (faster than a
    subprocess: the frameworks are imported once); return its exit code, stdout and stderr. An
    exception the tool does not turn into a message propagates (a traceback for the user)."""
    argv = [str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    saved = sys.argv
    sys.argv = [str(ROOT / tool), *argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(str(ROOT / tool), run_name='__main__')
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def process_group(tmp_path):
    """A one-process gloo group (DDP and ZeRO build their real machinery in it)."""
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0,
                            world_size=1)
    yield
    dist.destroy_process_group()


def free_port() -> int:
    """A TCP port free on this machine now (for a process group's rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run_from_file(rank: int, path: str, function: str, *args) -> None:
    spec = importlib.util.spec_from_file_location(f'spawned_{Path(path).stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    getattr(module, function)(rank, *args)


def spawn(function, args: tuple, nprocs: int) -> None:
    """``torch.multiprocessing.spawn(function, args, nprocs)`` for a function of a test module:
    test modules are imported by path (``--import-mode=importlib``), not by a name a spawned
    process could import, so each process loads the function's module from its file."""
    import torch.multiprocessing as mp
    mp.spawn(_run_from_file, args=(function.__code__.co_filename, function.__name__, *args),
             nprocs=nprocs)


# a tiny mmpretrain classifier (32x32 inputs) for the analysis tools and tools/fold.py
CLASSIFIER = '''
default_scope = 'mmpretrain'
custom_imports = dict(imports=['repl_mm'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='{backbone}', depth={depth}, zero_init_residual=False{extra}),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels={channels},
              loss=dict(type='CrossEntropyLoss')))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={{'repl_coefficients': dict(decay_mult=0.)}}))
train_dataloader = dict(batch_size=4)
test_pipeline = [dict(type='PackInputs')]
test_dataloader = dict(batch_size=4, dataset=dict(type='CIFAR10', data_root='data/cifar10',
                                                   test_mode=True, pipeline=test_pipeline))
custom_hooks = [dict(type='ReplCheckpointHook'), dict(type='TrainingCostHook')]
'''


def write_config(path, backbone: str, depth: int = 20, channels: int = 64, extra: str = ''):
    """Write ``CLASSIFIER`` with this backbone (``extra``: more backbone arguments) to ``path``."""
    path.write_text(CLASSIFIER.format(backbone=backbone, depth=depth, channels=channels,
                                      extra=extra))
    return path


def run_python(code: str) -> subprocess.CompletedProcess:
    """Run ``python -c CODE`` in a fresh interpreter; return the finished process."""
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300)


def tiny_runner(work_dir, data, **options):
    """The tiny RepL CIFAR config (tests/reliability_configs) on ``data``, 4 iterations with a
    checkpoint every 2 (``options`` override): its config and an in-process ``Runner``."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from reliability_configs.common import TINY
    cfg = Config.fromfile(TINY)
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root': str(data),
        'val_dataloader.dataset.data_root': str(data), 'work_dir': str(work_dir),
        'experiment_name': f'{work_dir.parent.name}_{work_dir.name}',
        'train_cfg.max_iters': 4, 'train_cfg.val_interval': 10,
        'default_hooks.checkpoint.interval': 2, 'default_hooks.checkpoint.max_keep_ckpts': 1,
        'randomness.deterministic': False, **options})
    return cfg, Runner.from_cfg(cfg)
