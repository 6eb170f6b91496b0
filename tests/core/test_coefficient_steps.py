"""Tests of repl_core.coefficient_steps: how optimizers step the RepL coefficients, as matrices.

The contract: with no line in the config, the coefficients step bit for bit as under mmengine's
``paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0., lr_mult=M)})`` with
``M = repl.coefficient_lr_mult``, and no code ever sees a coefficient value other than its true
one. ``OPTIMIZERS`` is an OptimizerInfo-style list, as PyTorch tests its optimizers: every torch
optimizer users meet with its ``foreach`` / ``fused`` / ``momentum`` / ``nesterov`` / ``maximize`` /
``amsgrad`` options. Each case trains a tiny real RepL-CIFAR-ResNet-20 (mmpretrain) for a few steps
twice, once as a user writes the config (``repl.coefficient_lr_mult=M``, no ``paramwise_cfg``) and
once as the reference (``paramwise_cfg``), and compares every parameter bit for bit.
"""
import copy
import os
from dataclasses import dataclass
from typing import Dict, List

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, PARAM_SCHEDULERS, init_default_scope

import repl_mm  # noqa: F401
from repl_core import COEFFICIENTS, ReplError, replaced_blocks

from conftest import free_port, spawn
from cuda_cases import CIFAR_CLASSIFIER, build_mmpretrain, classifier_batch, needs_cuda
from mm_cases import SMALL_RESNETS, build_backbone

pytestmark = pytest.mark.usefixtures('one_thread')

STEPS = 6


@dataclass(frozen=True)
class OptimizerCase:
    """One optimizer configuration of the matrix (mmengine's ``optimizer=dict(...)``)."""

    cfg: dict
    slow: bool = False

    @property
    def id(self) -> str:
        options = [f'{k}={v}' for k, v in self.cfg.items() if k not in ('type', 'lr')]
        return '-'.join([self.cfg['type'], *options])

    @property
    def decays(self) -> bool:
        return 'weight_decay' in self.cfg


OPTIMIZERS: List[OptimizerCase] = [
    OptimizerCase(dict(type='SGD', lr=0.1, weight_decay=0.01)),
    OptimizerCase(dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.01)),
    OptimizerCase(dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    OptimizerCase(dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.01, maximize=True)),
    OptimizerCase(dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.01, foreach=True)),
    OptimizerCase(dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.01, fused=True)),
    OptimizerCase(dict(type='Adam', lr=0.01, weight_decay=0.01)),
    OptimizerCase(dict(type='Adam', lr=0.01, weight_decay=0.01, amsgrad=True, foreach=True)),
    OptimizerCase(dict(type='Adam', lr=0.01, weight_decay=0.01, fused=True)),
    OptimizerCase(dict(type='Adam', lr=0.01, weight_decay=0.01, maximize=True)),
    OptimizerCase(dict(type='AdamW', lr=0.01, weight_decay=0.05)),
    OptimizerCase(dict(type='AdamW', lr=0.01, weight_decay=0.05, amsgrad=True)),
    OptimizerCase(dict(type='AdamW', lr=0.01, weight_decay=0.05, fused=True)),
    OptimizerCase(dict(type='NAdam', lr=0.01, weight_decay=0.01)),
    OptimizerCase(dict(type='NAdam', lr=0.01, weight_decay=0.01, decoupled_weight_decay=True,
                       foreach=True)),
    OptimizerCase(dict(type='RAdam', lr=0.01, weight_decay=0.01)),
    OptimizerCase(dict(type='RAdam', lr=0.01, weight_decay=0.01, decoupled_weight_decay=True)),
    OptimizerCase(dict(type='RMSprop', lr=0.01, weight_decay=0.01)),
    OptimizerCase(dict(type='RMSprop', lr=0.01, weight_decay=0.01, momentum=0.9, centered=True,
                       foreach=True)),
    OptimizerCase(dict(type='Adagrad', lr=0.01, weight_decay=0.01)),
    OptimizerCase(dict(type='Adagrad', lr=0.01, weight_decay=0.01, fused=True)),
    OptimizerCase(dict(type='Adadelta', lr=1.0, weight_decay=0.01)),
    OptimizerCase(dict(type='Adadelta', lr=1.0, weight_decay=0.01, maximize=True,
                       foreach=True)),
    OptimizerCase(dict(type='Adamax', lr=0.01, weight_decay=0.01)),
    OptimizerCase(dict(type='ASGD', lr=0.01, weight_decay=0.01)),
    OptimizerCase(dict(type='Rprop', lr=0.01)),
    OptimizerCase(dict(type='Rprop', lr=0.01, foreach=True, maximize=True)),
    # mmengine registers torch's Adafactor under this name; it reads each parameter's norm
    OptimizerCase(dict(type='TorchAdafactor', lr=0.01, weight_decay=0.01)),
]


def tiny_model(mult: float = 1.0, **repl) -> torch.nn.Module:
    """RepL-CIFAR-ResNet-20 at width 4 (plan layer1[1], layer2[1], layer3[1]), seeded."""
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    return MODELS.build(dict(type='RepLCIFARResNet', depth=20, base_channels=4,
                             stem_channels=4, repl=dict(repl, coefficient_lr_mult=mult)))


INPUT = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def loss_of(model: torch.nn.Module) -> torch.Tensor:
    out = model(INPUT)[-1]
    return out.square().mean() + out.mean()


def paramwise(mult: float, decays: bool) -> dict:
    """The reference: the coefficients in groups of their own, written in the config."""
    return dict(custom_keys={COEFFICIENTS: dict(lr_mult=mult,
                                                **(dict(decay_mult=0.) if decays else {}))})


def build_wrapper(model, optimizer: dict, mult: float, reference: bool, **wrapper):
    cfg = dict(optimizer=copy.deepcopy(optimizer), **copy.deepcopy(wrapper))
    if reference:
        cfg['paramwise_cfg'] = paramwise(mult, 'weight_decay' in optimizer)
    return build_optim_wrapper(model, cfg)


def trajectory(optimizer: dict, mult: float, reference: bool, steps: int = STEPS,
               schedulers=(), **wrapper) -> Dict[str, torch.Tensor]:
    """Every parameter after ``steps`` steps of a run as users write it (``reference=False``:
    ``repl.coefficient_lr_mult=mult``) or of the ``paramwise_cfg`` reference run."""
    model = tiny_model(1.0 if reference else mult)
    optim_wrapper = build_wrapper(model, optimizer, mult, reference, **wrapper)
    built = [PARAM_SCHEDULERS.build(dict(s, optimizer=optim_wrapper)) for s in schedulers]
    for _ in range(steps):
        optim_wrapper.update_params(loss_of(model))
        for scheduler in built:
            scheduler.step()
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def assert_same(ours: Dict[str, torch.Tensor], reference: Dict[str, torch.Tensor]) -> None:
    different = [n for n in reference if not torch.equal(ours[n], reference[n])]
    assert not different, f'{len(different)} tensors differ, e.g. {different[:4]}'


def coefficients_moved(values: Dict[str, torch.Tensor]) -> bool:
    start = dict(tiny_model().named_parameters())
    return all(not torch.equal(v, start[n]) for n, v in values.items() if COEFFICIENTS in n)


@pytest.mark.parametrize('mult', [1.0, 4.0, 3.0])
@pytest.mark.parametrize('case', OPTIMIZERS, ids=lambda c: c.id)
def test_coefficients_step_as_under_paramwise_cfg(case, mult):
    ours = trajectory(case.cfg, mult, reference=False)
    assert_same(ours, trajectory(case.cfg, mult, reference=True))
    assert coefficients_moved(ours)


@pytest.mark.parametrize('wrapper', [
    dict(accumulative_counts=2),
    dict(clip_grad=dict(max_norm=0.05)),
    dict(type='CPUAutocastOptimWrapper'),
], ids=['accumulation', 'clip_grad', 'cpu_autocast'])
@pytest.mark.parametrize('optimizer', [dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.01),
                                       dict(type='AdamW', lr=0.01, weight_decay=0.05)],
                         ids=['SGD', 'AdamW'])
def test_optim_wrappers(optimizer, wrapper):
    assert_same(trajectory(optimizer, 4.0, False, **wrapper),
                trajectory(optimizer, 4.0, True, **wrapper))


WARMUP = dict(type='LinearLR', start_factor=0.25, by_epoch=False, begin=0, end=3)


@pytest.mark.parametrize('mult, schedule', [
    (1.0, dict(type='CosineAnnealingLR', eta_min=1e-3, by_epoch=False, begin=3, end=STEPS)),
    (4.0, dict(type='MultiStepLR', milestones=[4], gamma=0.1, by_epoch=False)),
], ids=['mult1-cosine-floor', 'mult4-multistep'])
def test_learning_rate_schedules(mult, schedule):
    """Bit for bit under any schedule with lr_mult 1, and under a multiplicative one with a
    power of two (module docstring)."""
    optimizer = dict(type='AdamW', lr=0.01, weight_decay=0.05)
    assert_same(trajectory(optimizer, mult, False, schedulers=[WARMUP, schedule]),
                trajectory(optimizer, mult, True, schedulers=[WARMUP, schedule]))


class RecordingSGD(torch.optim.SGD):
    """SGD that records the learning rates its step sees."""

    def step(self, closure=None):
        self.seen.append(sorted({g['lr'] for g in self.param_groups}))
        return super().step(closure)


def test_a_schedule_floor_scales_with_the_multiplier():
    """What differs from ``paramwise_cfg`` with lr_mult != 1 under a floored schedule, as
    documented: the coefficients always step at M times their group's scheduled rate."""
    model = tiny_model(3.0)
    wrapper = build_wrapper(model, dict(type=RecordingSGD, lr=0.1, weight_decay=0.01), 3.0,
                            False)
    wrapper.optimizer.seen = []
    scheduler = PARAM_SCHEDULERS.build(dict(type='CosineAnnealingLR', eta_min=0.05, T_max=3,
                                            by_epoch=False, end=4, optimizer=wrapper))
    for _ in range(4):
        wrapper.update_params(loss_of(model))
        scheduler.step()
    seen = wrapper.optimizer.seen
    assert [low for low, _ in seen] == pytest.approx([0.1, 0.0875, 0.0625, 0.05])
    assert [high for _, high in seen] == pytest.approx([0.3, 0.2625, 0.1875, 0.15])
    assert [g['lr'] for g in wrapper.param_groups] == pytest.approx([0.05])  # as built


def test_a_closure_and_other_step_hooks_see_the_true_coefficients():
    """The step must not zero the decayed coefficients where a closure or another step hook can
    see them: the closure's forward would run with every synthesised weight zero."""
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    coefficients = [p for n, p in model.named_parameters() if COEFFICIENTS in n]
    seen = {}

    def record(where):
        def hook(*args):
            seen.setdefault(where, [c.detach().clone() for c in coefficients])
        return hook

    optimizer.register_step_pre_hook(record('pre-hook'))

    def closure():
        record('closure')()
        optimizer.zero_grad()
        loss = loss_of(model)
        loss.backward()
        return loss

    for step in range(2):
        true_values = [c.detach().clone() for c in coefficients]
        seen.clear()
        optimizer.step(closure)
        for where, values in seen.items():
            assert all(torch.equal(v, t) for v, t in zip(values, true_values)), (step, where)
        assert all(v.abs().sum() > 0 for v in seen['closure'])


def paramwise_groups(model, mult: float) -> List[dict]:
    """What mmengine's paramwise_cfg builds, in plain PyTorch: a group per parameter, in model
    order, the coefficients' without decay and at ``mult`` times the rate."""
    return [dict(params=[p], **(dict(lr=0.1 * mult, weight_decay=0.) if COEFFICIENTS in n
                                else {})) for n, p in model.named_parameters()]


def test_code_inside_the_step_that_reads_or_writes_the_optimizer():
    """A closure that snapshots ``state_dict()`` (for a rollback) and a per-optimizer pre-hook
    that halves the learning rate (a warm-up written as a hook) work on the real groups, and the
    step is still the reference's, bit for bit."""
    runs = []
    for reference in (False, True):
        model = tiny_model(1.0 if reference else 4.0)
        params = paramwise_groups(model, 4.0) if reference else model.parameters()
        optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01)
        snapshots = []

        def halve(opt, args, kwargs):
            for group in opt.param_groups:
                group['lr'] *= 0.5

        optimizer.register_step_pre_hook(halve)

        def closure():
            snapshots.append(optimizer.state_dict())
            optimizer.zero_grad()
            loss = loss_of(model)
            loss.backward()
            return loss

        for _ in range(3):
            optimizer.step(closure)
        assert len(snapshots[-1]['param_groups']) == len(optimizer.param_groups)
        runs.append({n: p.detach().clone() for n, p in model.named_parameters()})
        assert optimizer.param_groups[0]['lr'] == 0.1 / 8
    assert_same(*runs)


class FailingSGD(torch.optim.SGD):
    """SGD whose step, when told to, raises right after its update."""

    fail = False

    def step(self, closure=None):
        loss = super().step(closure)
        if self.fail:
            self.fail = False
            raise RuntimeError('failure inside step')
        return loss


def test_an_exception_inside_step_leaves_nothing_behind():
    """Nothing of the view outlives a step that raises: the groups, ``state_dict()``, a
    scheduler's writes and the next step are as they would be."""
    model = tiny_model(4.0)
    optimizer = FailingSGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    real = optimizer.param_groups
    loss_of(model).backward()
    optimizer.step()
    groups = copy.deepcopy(optimizer.state_dict()['param_groups'])
    optimizer.fail = True
    with pytest.raises(RuntimeError, match='failure inside step'):
        optimizer.step()
    assert optimizer.param_groups is real and len(real) == 1
    assert optimizer.state_dict()['param_groups'] == groups
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    scheduler.step()
    optimizer.step()
    assert real[0]['lr'] == 0.05
    twin = tiny_model(4.0)
    twin_optimizer = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    twin_scheduler = torch.optim.lr_scheduler.StepLR(twin_optimizer, step_size=1, gamma=0.5)
    loss_of(twin).backward()
    twin_optimizer.step()
    twin_optimizer.step()
    twin_scheduler.step()
    twin_optimizer.step()
    assert_same({n: p.detach() for n, p in model.named_parameters()},
                {n: p.detach() for n, p in twin.named_parameters()})


class CountingSGD(torch.optim.SGD):
    """Keeps a counter and an estimate in each group, as D-Adaptation, Prodigy and schedule-free
    optimizers do: the counter is the same for every run of a group, the estimate is not."""

    def step(self, closure=None):
        for group in self.param_groups:
            group['k'] = group.get('k', 0) + 1
            if self.estimate:
                group['d'] = sum(float(p.grad.abs().sum()) for p in group['params'])
        return super().step(closure)


@pytest.mark.parametrize('estimate', [False, True])
def test_what_a_step_writes_into_its_groups(estimate):
    """A counter written into the groups during the step reaches the real group; per-group
    estimates cannot be kept for groups that exist only during the step: refused with the fix."""
    model = tiny_model()
    optimizer = CountingSGD(model.parameters(), lr=0.1, weight_decay=0.01)
    optimizer.estimate = estimate
    loss_of(model).backward()
    if estimate:
        with pytest.raises(ReplError, match=r"wrote 'd' into its parameter groups.*"
                                            r'paramwise_cfg=dict\(custom_keys'):
            optimizer.step()
        return
    for _ in range(3):
        optimizer.step()
    assert optimizer.param_groups[0]['k'] == 3


def test_optimizer_state_dict_and_resume_are_exact():
    """The optimizer's state dict holds its groups as built; resuming it mid-run continues bit
    for bit."""
    optimizer_cfg = dict(type='AdamW', lr=0.01, weight_decay=0.05)
    uninterrupted = trajectory(optimizer_cfg, 4.0, False)
    model = tiny_model(4.0)
    wrapper = build_wrapper(model, optimizer_cfg, 4.0, False)
    for _ in range(STEPS // 2):
        wrapper.update_params(loss_of(model))
    state = copy.deepcopy(wrapper.state_dict())
    groups = state['param_groups']
    assert len(groups) == 1 and groups[0]['weight_decay'] == 0.05 and groups[0]['lr'] == 0.01
    weights = copy.deepcopy(model.state_dict())
    resumed = tiny_model(4.0)
    resumed.load_state_dict(weights)
    resumed_wrapper = build_wrapper(resumed, optimizer_cfg, 4.0, False)
    resumed_wrapper.load_state_dict(state)
    for _ in range(STEPS - STEPS // 2):
        resumed_wrapper.update_params(loss_of(resumed))
    assert_same({n: p.detach() for n, p in resumed.named_parameters()}, uninterrupted)


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimisation as it is usually written (Foret et al.; the widely copied
    implementation): an outer optimizer sharing its param groups with an inner one, stepped
    with a closure."""

    def __init__(self, params, base_optimizer, rho=0.05, **kwargs):
        super().__init__(params, dict(rho=rho, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups

    @torch.no_grad()
    def step(self, closure):
        grads = [p.grad for g in self.param_groups for p in g['params'] if p.grad is not None]
        norm = torch.norm(torch.stack([g.norm(p=2) for g in grads]), p=2)
        for group in self.param_groups:
            scale = group['rho'] / (norm + 1e-12)
            for p in group['params']:
                if p.grad is not None:
                    self.state[p]['e_w'] = p.grad * scale
                    p.add_(self.state[p]['e_w'])
        with torch.enable_grad():
            closure()
        for group in self.param_groups:
            for p in group['params']:
                if 'e_w' in self.state[p]:
                    p.sub_(self.state[p]['e_w'])
        self.base_optimizer.step()


def test_a_nested_optimizer_applies_everything_once():
    """SAM steps through an inner SGD that shares its groups: decay off and lr_mult once."""
    runs = []
    for reference in (False, True):
        model = tiny_model(1.0 if reference else 4.0)
        if reference:
            params = paramwise_groups(model, 4.0)
        else:
            params = model.parameters()
        optimizer = SAM(params, torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=0.01)

        def closure():
            optimizer.zero_grad()
            loss_of(model).backward()

        for _ in range(3):
            closure()
            optimizer.step(closure)
        runs.append({n: p.detach().clone() for n, p in model.named_parameters()})
    assert_same(*runs)


def test_lbfgs_steps_true_values_and_refuses_a_multiplier():
    model = tiny_model()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=3)

    def closure():
        optimizer.zero_grad()
        loss = loss_of(model)
        loss.backward()
        return loss

    before = loss_of(model).item()
    optimizer.step(closure)
    assert loss_of(model).item() < before
    model = tiny_model(4.0)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.1)
    with pytest.raises(ReplError, match=r'LBFGS takes one parameter group.*'
                                        r'repl.coefficient_lr_mult=1'):
        optimizer.step(closure)


def test_optimizers_that_cannot_step_coefficients_are_refused_with_the_fix():
    # Muon takes 2-D matrices: a (2, C_out) coefficient of 'channel' granularity is one
    model = tiny_model(granularity='channel')
    loss_of(model).backward()
    optimizer = torch.optim.Muon([p for p in model.parameters() if p.ndim == 2], lr=0.01)
    with pytest.raises(ReplError, match=r'Muon orthogonalises.*Give them to a second '
                                        r'optimizer'):
        optimizer.step()
    # with per-tensor coefficients torch's Muon refuses them itself, when it is built
    with pytest.raises(ValueError, match='Muon only supports 2D parameters'):
        torch.optim.Muon(tiny_model().parameters(), lr=0.01)
    optimizer = torch.optim.SparseAdam(list(model.parameters()), lr=0.01)
    with pytest.raises(ReplError, match=r'SparseAdam takes sparse gradients only'):
        optimizer.step()


def test_muon_with_a_second_optimizer_as_documented():
    """README's recipe: Muon for the 2-D weight matrices, AdamW for the rest, coefficients
    included (a tiny RepL-ViT: its linear maps are matrices)."""
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(dict(type='RepLVisionTransformer', img_size=16, patch_size=4,
                              arch=dict(embed_dims=16, num_layers=4, num_heads=2,
                                        feedforward_channels=32)))
    named = list(model.named_parameters())
    start = {n: p.detach().clone() for n, p in named}
    matrices = [p for n, p in named if p.ndim == 2 and COEFFICIENTS not in n]
    rest = [p for n, p in named if not (p.ndim == 2 and COEFFICIENTS not in n)]
    optimizers = [torch.optim.Muon(matrices, lr=0.01),
                  torch.optim.AdamW(rest, lr=0.01, weight_decay=0.05)]
    for _ in range(2):
        for optimizer in optimizers:
            optimizer.zero_grad()
        model(INPUT)[-1].square().mean().backward()
        for optimizer in optimizers:
            optimizer.step()
    assert all(not torch.equal(p, start[n]) for n, p in named if COEFFICIENTS in n)


def _distributed_steps(rank: int, port: int, results) -> None:
    """One of two gloo processes with the same data: DDP and ZeRO against the single-process
    reference (the all-reduced mean of equal gradients is the gradient itself, bit for bit)."""
    from mmengine.model import MMDistributedDataParallel
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        reference = trajectory(dict(type='AdamW', lr=0.01, weight_decay=0.05), 4.0, True)
        model = tiny_model(4.0)
        ddp = MMDistributedDataParallel(model, device_ids=None)
        wrapper = build_wrapper(model, dict(type='AdamW', lr=0.01, weight_decay=0.05), 4.0,
                                False)
        for _ in range(STEPS):
            out = ddp(INPUT)[-1]
            wrapper.update_params(out.square().mean() + out.mean())
        ddp_equal = all(torch.equal(p, reference[n]) for n, p in model.named_parameters())
        zero = trajectory(dict(type='ZeroRedundancyOptimizer', optimizer_type='AdamW', lr=0.01,
                               weight_decay=0.05), 4.0, False)
        zero_equal = all(torch.equal(zero[n], reference[n]) for n in reference)
        results[rank] = (ddp_equal, zero_equal)
    finally:
        dist.destroy_process_group()


def test_ddp_and_zero_redundancy_optimizer():
    """ZeroRedundancyOptimizer must apply lr_mult once, not in its own step and again in its
    inner optimizer's (4 would give a 16x update)."""
    results = mp.Manager().dict()
    spawn(_distributed_steps, args=(free_port(), results), nprocs=2)
    assert dict(results) == {0: (True, True), 1: (True, True)}


@pytest.mark.parametrize('optimizer', [
    dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.01),
    dict(type='AdamW', lr=0.1, weight_decay=0.05),
    dict(type='Adam', lr=0.1, weight_decay=0.01),
    dict(type='RMSprop', lr=0.1, weight_decay=0.01),
    dict(type='NAdam', lr=0.1, weight_decay=0.01, decoupled_weight_decay=True),
])
def test_no_weight_decay_on_coefficients_without_a_config_line(optimizer):
    """Zero gradients everywhere: the optimizer's decay moves every weight but no coefficient."""
    from mmengine.optim import build_optim_wrapper
    model = build_backbone('mmdet', SMALL_RESNETS['mmdet'])
    wrapper = build_optim_wrapper(model, dict(optimizer=optimizer))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    for _ in range(5):
        wrapper.step()
    after = dict(model.named_parameters())
    for name, value in before.items():
        if COEFFICIENTS in name:
            assert torch.equal(after[name], value), name
    weight = 'layer1.0.conv1.weight'
    assert (after[weight] - before[weight]).abs().max() > 1e-3 * before[weight].abs().max()


@needs_cuda
def test_amp_optim_wrapper_trains_coefficients_and_neighbours():
    """fp16 autocast with dynamic loss scaling: the loss stays finite, the coefficients and the
    neighbours' weights move, and every parameter stays fp32."""
    torch.manual_seed(0)
    model = build_mmpretrain(CIFAR_CLASSIFIER).cuda()
    wrapper = build_optim_wrapper(model, dict(type='AmpOptimWrapper', loss_scale='dynamic',
                                              optimizer=dict(type='SGD', lr=0.1, momentum=0.9)))
    [(path, block)] = list(replaced_blocks(model.backbone))[:1]
    coefficients = {n: c.detach().clone() for n, c in getattr(block, COEFFICIENTS).items()}
    neighbour = dict(model.backbone.named_parameters())
    before = {n: p.detach().clone() for n, p in neighbour.items() if 'layer1.0.' in n}
    model.train()
    losses = []
    for step in range(6):
        data = model.data_preprocessor(classifier_batch(seed=step), True)
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
        cfg = copy.deepcopy(CIFAR_CLASSIFIER)
        cfg['backbone']['repl'] = dict(coefficient_lr_mult=1.0 if reference else 4.0)
        model = build_mmpretrain(cfg).cuda()
        wrapper_cfg = dict(type='AmpOptimWrapper', loss_scale='dynamic', optimizer=optimizer)
        if reference:
            wrapper_cfg['paramwise_cfg'] = dict(custom_keys={COEFFICIENTS: dict(
                decay_mult=0., lr_mult=4.0)})
        wrapper = build_optim_wrapper(model, wrapper_cfg)
        model.train()
        for step in range(4):
            data = model.data_preprocessor(classifier_batch(seed=step), True)
            with wrapper.optim_context(model):
                loss = sum(model(**data, mode='loss').values())
            wrapper.update_params(loss)
        runs.append({n: p.detach().clone() for n, p in model.named_parameters()})
    different = [n for n in runs[1] if not torch.equal(runs[0][n], runs[1][n])]
    assert not different, different[:4]
