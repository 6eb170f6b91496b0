"""Tests of repl_mm.engine.hooks.training_cost_hook: TrainingCostHook through mmengine's Runner:
what reaches the JSON log equals what the model and optimizer hold at that iteration."""
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.runner import Runner

import repl_mm  # noqa: F401
from repl_core import COEFFICIENTS, replaced_blocks, synthesised_numel
from repl_mm.analysis.synthetic import SyntheticDataset, synthetic_runner
from repl_mm.engine.hooks import TrainingCostHook

from cuda_cases import CIFAR_CLASSIFIER, needs_cuda

MIB = 1024 * 1024


def tiny_classifier_cfg() -> Config:
    """RepL CIFAR ResNet-20, stem and layer1 frozen (so the default plan replaces 2 blocks, not
    layer1[1]), SGD with momentum."""
    return Config(dict(
        default_scope='mmpretrain',
        model=dict(type='ImageClassifier',
                   backbone=dict(type='RepLCIFARResNet', depth=20, frozen_stages=1,
                                 zero_init_residual=False, repl=dict()),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=10, in_channels=64)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5, momentum=0.9)),
        train_dataloader=dict(batch_size=8),
        test_dataloader=dict(dataset=dict(type='CIFAR10', pipeline=[]))))


class CoefficientRecorder(Hook):
    """Each block's mean a and b after every iteration, computed here independently."""

    def __init__(self) -> None:
        self.means = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.means[runner.iter + 1] = {
            path: [torch.cat([c[row].flatten() for c in getattr(block, COEFFICIENTS).values()])
                   .mean().item() for row in (0, 1)]
            for path, block in replaced_blocks(runner.model)}


def test_hook_logs_memory_counts_and_coefficients(tmp_path):
    recorder = CoefficientRecorder()
    runner = synthetic_runner(tiny_classifier_cfg(), str(tmp_path), max_iters=3, log_interval=1,
                              custom_hooks=[dict(type='TrainingCostHook'), recorder])
    runner.train()
    model = runner.model
    [log_file] = glob.glob(osp.join(str(tmp_path), '*', 'vis_data', 'scalars.json'))
    lines = [json.loads(line) for line in open(log_file)]
    assert [line['iter'] for line in lines] == [1, 2, 3]

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    state = runner.optim_wrapper.optimizer.state.values()
    state_bytes = sum(v.numel() * v.element_size() for s in state for v in s.values()
                      if isinstance(v, torch.Tensor))
    assert frozen > 0 and state_bytes == 4 * trainable  # one fp32 momentum buffer per value
    paths = [path for path, _ in replaced_blocks(model)]
    assert paths == ['backbone.layer2.1', 'backbone.layer3.1']
    for line in lines:
        assert 50 < line['cost/cpu_peak_rss_mb'] < 24 * 1024
        assert line['cost/params_trainable'] == trainable
        assert line['cost/params_frozen'] == frozen
        assert line['cost/params_synthesised'] == synthesised_numel(model) > 0
        assert line['cost/replaced_blocks'] == 2
        assert line['cost/grad_bytes'] == 4 * trainable
        assert line['cost/optimizer_state_bytes'] == state_bytes
        for path in paths:
            expected_a, expected_b = recorder.means[line['iter']][path]
            assert abs(line[f'repl/{path}/a'] - expected_a) < 1e-6
            assert abs(line[f'repl/{path}/b'] - expected_b) < 1e-6
    # the coefficients moved, so the comparison above is not with 0.5
    assert lines[-1]['repl/backbone.layer3.1/a'] != 0.5
    text_log = glob.glob(osp.join(str(tmp_path), '*', '*.log'))[0]
    assert 'cost/cpu_peak_rss_mb: ' in open(text_log).read()


def test_hook_follows_the_logger_in_an_epoch_based_loop(tmp_path):
    """Default interval: exactly the LoggerHook's lines (every 2nd batch of each 3-batch epoch,
    the epoch's last batch skipped as LoggerHook's ignore_last does)."""
    class Recording(TrainingCostHook):
        def __init__(self) -> None:
            super().__init__()
            self.iters = []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if self._due(runner, batch_idx):
                self.iters.append(runner.iter + 1)
            super().after_train_iter(runner, batch_idx, data_batch, outputs)

    hook = Recording()
    cfg = tiny_classifier_cfg()
    loader = torch.utils.data.DataLoader(SyntheticDataset('mmpretrain', (32, 32), 6),
                                         batch_size=2, collate_fn=pseudo_collate)
    runner = Runner(model=cfg.model, work_dir=str(tmp_path), train_dataloader=loader,
                    optim_wrapper=cfg.optim_wrapper, train_cfg=dict(by_epoch=True, max_epochs=2),
                    default_hooks=dict(logger=dict(type='LoggerHook', interval=2)),
                    custom_hooks=[hook], default_scope='mmpretrain',
                    experiment_name='epochs')
    runner.train()
    [log_file] = glob.glob(osp.join(str(tmp_path), '*', 'vis_data', 'scalars.json'))
    logged = [json.loads(line)['iter'] for line in open(log_file)]
    assert logged == hook.iters == [2, 5]


def test_hook_logs_the_memory_ledger_at_its_interval(tmp_path):
    """ledger_interval=2: iterations 2 and 4 run inside the ledger; the log carries every
    category, parameters and optimizer state equal to hand counts, and the model's train_step
    is its class's again afterwards."""
    runner = synthetic_runner(tiny_classifier_cfg(), str(tmp_path), max_iters=4, log_interval=1,
                              custom_hooks=[dict(type='TrainingCostHook', ledger_interval=2)])
    runner.train()
    assert 'train_step' not in vars(runner.model)
    [log_file] = glob.glob(osp.join(str(tmp_path), '*', 'vis_data', 'scalars.json'))
    lines = [json.loads(line) for line in open(log_file)]
    assert 'cost/ledger/peak_mb' not in lines[0]  # iteration 1 ran without the ledger
    params = list(runner.model.parameters())
    trainable = [p for p in params if p.requires_grad]
    steps = []
    for line in lines[1:]:
        categories = [key for key in line if key.startswith('cost/ledger/')
                      and key.endswith('_mb') and key not in ('cost/ledger/peak_mb',
                                                              'cost/ledger/saved_for_backward_mb')]
        assert len(categories) == 10
        assert abs(sum(line[key] for key in categories) - line['cost/ledger/peak_mb']) < 1e-6
        assert line['cost/ledger/parameters_mb'] * MIB == pytest.approx(
            sum(p.numel() * 4 for p in params), abs=1)
        assert line['cost/ledger/optimizer_state_mb'] * MIB == pytest.approx(
            sum(p.numel() * 4 for p in trainable), abs=1)  # SGD momentum
        assert line['cost/ledger/activations_mb'] > 0
        assert line['cost/ledger/flops_backward'] > line['cost/ledger/flops_forward'] > 0
        steps.append(line['cost/ledger/step_s'])
    assert steps[0] == steps[1] and steps[1] != steps[2]  # iteration 4 logged anew


@needs_cuda
def test_training_cost_hook_logs_cuda_memory(tmp_path):
    """On CUDA the hook logs torch's max allocated / reserved memory (reset after each read)."""
    from mmengine.config import Config
    cfg = Config(dict(default_scope='mmpretrain', model=CIFAR_CLASSIFIER,
                      optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                      train_dataloader=dict(batch_size=8),
                      test_dataloader=dict(dataset=dict(type='CIFAR10', pipeline=[]))))
    runner = synthetic_runner(cfg, str(tmp_path), max_iters=3, log_interval=1,
                              custom_hooks=[dict(type='TrainingCostHook')])
    runner.train()
    assert next(runner.model.parameters()).device.type == 'cuda'
    [log_file] = glob.glob(osp.join(str(tmp_path), '*', 'vis_data', 'scalars.json'))
    lines = [json.loads(line) for line in open(log_file)]
    for line in lines:
        assert 0 < line['cost/cuda_peak_allocated_mb'] <= line['cost/cuda_peak_reserved_mb']
        assert 'cost/cpu_peak_rss_mb' not in line
    weights_mb = sum(p.numel() * 4 for p in runner.model.parameters()) / 2**20
    assert lines[-1]['cost/cuda_peak_allocated_mb'] >= weights_mb
