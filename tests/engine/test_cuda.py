"""The CUDA paths: device moves, fp16 AMP through mmengine's ``AmpOptimWrapper``, folding on the
GPU, the flat synthesis against the per-tensor reference, the light surrogate under autocast and
channels-last, ``TrainingCostHook``'s CUDA memory keys, and the memory ledger against
``torch.cuda.max_memory_allocated``. Where no GPU is present (CI) the first
test runs on the CPU and the others are skipped; run them on a GPU machine with
``python -m pytest tests/engine/test_cuda.py``. Only mmpretrain is needed,
so they also run where mmcv is installed without its compiled ops."""
import copy
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import repl_mm  # noqa: F401
from conftest import loss_and_grads
from repl_mm.analysis.synthetic import synthetic_runner
from repl_core import (COEFFICIENTS, block_syntheses, fold_replaced_blocks, replaced_blocks,
                       synthesis_kernels)

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
needs_cuda = pytest.mark.skipif(DEVICE != 'cuda', reason='needs a CUDA device')


def build(cfg: dict) -> torch.nn.Module:
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(copy.deepcopy(cfg))


CLASSIFIER = dict(
    type='ImageClassifier',
    backbone=dict(type='RepLCIFARResNet', depth=20, zero_init_residual=False, repl=dict()),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64))


def batch(size: int = 8, seed: int = 0) -> dict:
    from mmpretrain.structures import DataSample
    generator = torch.Generator().manual_seed(seed)
    images = [torch.randint(0, 256, (3, 32, 32), generator=generator, dtype=torch.uint8)
              for _ in range(size)]
    labels = torch.randint(0, 10, (size, ), generator=generator)
    return dict(inputs=images, data_samples=[DataSample().set_gt_label(int(label))
                                             for label in labels])


@pytest.mark.parametrize('kind', ['fused', 'light'])
def test_cuda_outputs_equal_cpu_outputs_and_fold(kind):
    """``.cuda()`` moves the neighbour references with the model: the GPU forward equals the CPU
    one, and folding on the GPU keeps the outputs."""
    torch.manual_seed(0)
    backbone = build(dict(type='RepLResNet', depth=50, repl=dict(kind=kind)))
    backbone.eval()  # mmpretrain's ResNet.train returns None: no chaining
    inputs = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = backbone(inputs)
        gpu = backbone.to(DEVICE)
        outputs = gpu(inputs.to(DEVICE))
        for out, ref in zip(outputs, expected):
            assert out.device.type == DEVICE
            torch.testing.assert_close(out.cpu(), ref, rtol=1e-3, atol=1e-3)
        fold_replaced_blocks(gpu)
        assert not list(replaced_blocks(gpu))
        for out, ref in zip(gpu(inputs.to(DEVICE)), outputs):
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'channels_last'])
@pytest.mark.parametrize('repl', [dict(kind='fused'), dict(kind='fused', granularity='channel'),
                                  dict(kind='light')], ids=['fused', 'channel', 'light'])
def test_cuda_flat_synthesis_equals_per_tensor_reference(repl, channels_last):
    """On CUDA a backbone's replaced tensors are one flat buffer, and a tensor synthesised on its
    own (folding, warm start) takes the same kernels: the loss equals the per-tensor reference's
    bit for bit, the gradients to float64 rounding; the values keep the neighbours' layout."""
    assert synthesis_kernels.FLAT_SYNTHESIS['cuda']
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = build(dict(type='RepLResNet', depth=50, repl=repl)).double()
    model = model.to('cuda', memory_format=memory_format)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    per_tensor = copy.deepcopy(model)
    for group in block_syntheses(per_tensor):
        group.remove()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, device='cuda').to(
        memory_format=memory_format)
    loss, grads = loss_and_grads(model, x)
    ref_loss, ref_grads = loss_and_grads(per_tensor, x)
    assert torch.equal(loss, ref_loss)
    assert grads.keys() == ref_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-9, atol=1e-15, msg=name)
    block = replaced_blocks(model)[0][1]
    if repl['kind'] == 'fused':
        prev = block.conv2.parametrizations.weight[0].neighbours[0]
        assert block.conv2.weight.stride() == prev.weight.stride()


@needs_cuda
@pytest.mark.parametrize('light_norm', ['batch', 'weight'])
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['fp16', 'bf16'])
def test_cuda_light_surrogate_under_autocast_channels_last(dtype, light_norm):
    """The light surrogate under autocast on channels-last input: close to fp32, and the
    backbone trains (finite coefficient gradients)."""
    torch.manual_seed(0)
    model = build(dict(type='RepLResNet', depth=50,
                       repl=dict(kind='light', light_norm=light_norm)))
    model = model.to('cuda', memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64, device='cuda').to(memory_format=torch.channels_last)
    surrogate = model.layer1[1]
    features = torch.rand(2, 256, 16, 16, device='cuda').to(memory_format=torch.channels_last)
    surrogate.eval()  # the batch-norm surrogate: running statistics, the same in both
    with torch.no_grad():
        expected = surrogate(features)
        with torch.autocast('cuda', dtype=dtype):
            out = surrogate(features)
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.float(), expected, rtol=0.02, atol=0.02)
    surrogate.train()
    with torch.autocast('cuda', dtype=dtype):
        outputs = model(x)
    sum(o.float().square().mean() for o in outputs).backward()
    for _, block in replaced_blocks(model):
        for name, p in getattr(block, COEFFICIENTS).items():
            assert torch.isfinite(p.grad).all(), name


@needs_cuda
def test_amp_optim_wrapper_trains_coefficients_and_neighbours():
    """fp16 autocast with dynamic loss scaling: the loss stays finite, the coefficients and the
    neighbours' weights move, and every parameter stays fp32."""
    torch.manual_seed(0)
    model = build(CLASSIFIER).cuda()
    wrapper = build_optim_wrapper(model, dict(type='AmpOptimWrapper', loss_scale='dynamic',
                                              optimizer=dict(type='SGD', lr=0.1, momentum=0.9)))
    [(path, block)] = list(replaced_blocks(model.backbone))[:1]
    coefficients = {n: c.detach().clone() for n, c in getattr(block, COEFFICIENTS).items()}
    neighbour = dict(model.backbone.named_parameters())
    before = {n: p.detach().clone() for n, p in neighbour.items() if 'layer1.0.' in n}
    model.train()
    losses = []
    for step in range(6):
        data = model.data_preprocessor(batch(seed=step), True)
        with wrapper.optim_context(model):
            loss = sum(model(**data, mode='loss').values())
        wrapper.update_params(loss)
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    moved = [n for n, c in getattr(block, COEFFICIENTS).items()
             if not torch.equal(c.detach(), coefficients[n])]
    assert moved, f'no coefficient of {path} changed under AMP'
    assert any(not torch.equal(neighbour[n].detach(), before[n]) for n in before)


@needs_cuda
@pytest.mark.parametrize('optimizer', [dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.01),
                                       dict(type='AdamW', lr=0.01, weight_decay=0.05)])
def test_amp_optim_wrapper_steps_coefficients_as_paramwise_cfg(optimizer, monkeypatch):
    """The coefficient-steps contract under ``AmpOptimWrapper`` (GradScaler's unscale and skipped
    steps around the optimizer's): bit for bit the ``paramwise_cfg`` run, with deterministic
    kernels (tests/core/test_coefficient_steps.py is the CPU matrix)."""
    monkeypatch.setattr(torch.backends.cudnn, 'deterministic', True)
    monkeypatch.setattr(torch.backends.cudnn, 'benchmark', False)
    runs = []
    for reference in (False, True):
        torch.manual_seed(0)
        cfg = copy.deepcopy(CLASSIFIER)
        cfg['backbone']['repl'] = dict(coefficient_lr_mult=1.0 if reference else 4.0)
        model = build(cfg).cuda()
        wrapper_cfg = dict(type='AmpOptimWrapper', loss_scale='dynamic', optimizer=optimizer)
        if reference:
            wrapper_cfg['paramwise_cfg'] = dict(custom_keys={COEFFICIENTS: dict(
                decay_mult=0., lr_mult=4.0)})
        wrapper = build_optim_wrapper(model, wrapper_cfg)
        model.train()
        for step in range(4):
            data = model.data_preprocessor(batch(seed=step), True)
            with wrapper.optim_context(model):
                loss = sum(model(**data, mode='loss').values())
            wrapper.update_params(loss)
        runs.append({n: p.detach().clone() for n, p in model.named_parameters()})
    different = [n for n in runs[1] if not torch.equal(runs[0][n], runs[1][n])]
    assert not different, different[:4]


@needs_cuda
def test_training_cost_hook_logs_cuda_memory(tmp_path):
    """On CUDA the hook logs torch's max allocated / reserved memory (reset after each read)."""
    from mmengine.config import Config
    cfg = Config(dict(default_scope='mmpretrain', model=CLASSIFIER,
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


@needs_cuda
@pytest.mark.parametrize('repl', [None, dict(), dict(kind='light', light_norm='weight')],
                         ids=['plain', 'fused', 'light-weight'])
def test_ledger_explains_cuda_max_memory_allocated(repl):
    """One backbone step of a ResNet-50 at 16x3x224x224 (SGD with momentum, its state made
    first): the ledger's categories at its peak sum to within 5% of max_memory_allocated over
    the step, less what was allocated before the model was built; the parameters, gradients
    and optimizer state equal hand counts."""
    from mmengine.config import Config
    from repl_mm.analysis.ledger_report import measure_ledger
    backbone = dict(type='ResNet', depth=50) if repl is None else \
        dict(type='RepLResNet', depth=50, repl=repl)
    cfg = Config(dict(default_scope='mmpretrain', model=dict(backbone=backbone),
                      optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))))
    result = measure_ledger(cfg, device='cuda', shape=(224, 224), batch_size=16,
                            backbone_only=True)
    measured = result['measured']['peak_bytes']
    assert result['measured']['source'] == 'torch.cuda.max_memory_allocated'
    assert abs(result['peak']['total'] / measured - 1) < 0.05, (result['peak'], measured)
    trainable = 4 * result['params']['trainable']
    assert result['peak']['by_category']['parameters'] == 4 * result['params']['parameters']
    assert result['peak']['by_category']['optimizer_state'] == trainable
    assert result['optimizer_step']['gradients'] == trainable
