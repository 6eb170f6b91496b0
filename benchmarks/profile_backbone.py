"""Where a RepL backbone's training step spends its time, against its plain twin, in one process.

    python benchmarks/profile_backbone.py CONFIG [--kinds fused light] [--shape H W]
        [--batch-size N] [--steps 10] [--rounds 2] [--top 12] [--per-tensor] [--per-block]
        [--amp fp16|bf16] [--channels-last] [--device cuda]

Builds the config's backbone plain and with each RepL kind, times forward + backward (mean
squared outputs as the loss) of one synthetic batch, alternating the models over
``--rounds`` so that drift of the machine hits all of them, and prints each model's median step
time and the ``--top`` operators of torch's profiler (self time over 3 steps; ``--top 0``: no
profile). A same-process A/B is steadier than ``benchmarks/benchmark.py``'s separate processes,
which are the fairer comparison of memory. ``--per-tensor`` adds each kind once more with its
tensors synthesised one by one (``<kind>/per-tensor``), ``--per-block`` with each replaced block
synthesising its own tensors instead of the backbone all at once (``<kind>/per-block``): what
batching the synthesis saves. ``--amp`` runs every model's forward under autocast,
``--channels-last`` gives models and batch that memory format. On CUDA each model's peak
allocated memory over one step (after the model and its inputs) is printed too.
"""
import argparse
import copy

import torch
from mmengine.registry import MODELS, init_default_scope
from torch.profiler import ProfilerActivity, profile

import repl_mm  # noqa: F401  (registers the RepL classes)
from repl_mm.models import plain_model_cfg
from repl_mm.analysis.synthetic import backbone_input, framework_of, input_shape
from cost_benchmark import resolve_device
from repl_mm.analysis.step_timing import forward_backward, time_step
from repl_core import KINDS, backbone_syntheses, block_syntheses
from repl_mm.engine.cli import add_cfg_options, load_config, run_tool


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--kinds', nargs='+', default=['fused', 'light'],
                        choices=KINDS)
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--batch-size', type=int)
    parser.add_argument('--steps', type=int, default=10, help='timed steps per round')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--top', type=int, default=12, help='profiler rows per model')
    parser.add_argument('--per-tensor', action='store_true',
                        help='also time each kind with its tensors synthesised one by one')
    parser.add_argument('--per-block', action='store_true',
                        help='also time each kind with each block synthesising its own tensors')
    parser.add_argument('--amp', choices=['fp16', 'bf16'],
                        help='run each step (forward and backward) under autocast to this dtype')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    add_cfg_options(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    args.device = resolve_device(args.device)
    cfg = load_config(args)
    init_default_scope(framework_of(cfg))
    shape = tuple(args.shape) if args.shape else input_shape(cfg)
    batch = args.batch_size or cfg.train_dataloader.get('batch_size', 1)
    backbone = cfg.model.backbone
    if 'RepL' not in str(backbone.type):
        raise SystemExit(f'{backbone.type} is not a RepL backbone: give a RepL config.')
    configs = {'plain': plain_model_cfg(cfg.model)['backbone']}
    for kind in args.kinds:
        configs[kind] = dict(copy.deepcopy(backbone),
                             repl=dict(backbone.get('repl') or {}, kind=kind))
    for mode in ('per-tensor', 'per-block'):
        if getattr(args, mode.replace('-', '_')):
            configs.update({f'{kind}/{mode}': configs[kind] for kind in args.kinds})
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    steps, peaks = {}, {}
    for name, model_cfg in configs.items():
        torch.manual_seed(0)
        model = MODELS.build(model_cfg).to(args.device, memory_format=memory_format)
        model.train()
        if name.endswith('/per-tensor'):
            for group in block_syntheses(model):
                group.remove()
        if name.endswith('/per-block'):
            for batch_synthesis in backbone_syntheses(model):
                batch_synthesis.remove()
        inputs = backbone_input(cfg, batch, shape, seed=0).to(args.device,
                                                              memory_format=memory_format)
        steps[name] = autocast_step(forward_backward(model, inputs), args.device, args.amp)
        peaks[name] = peak_step_mib(steps[name], args.device)
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(time_step(step, repeats=args.steps, warmup=3)['median'])
    base = sorted(times['plain'])[len(times['plain']) // 2]
    print(f'batch {batch}x{shape[0]}x{shape[1]}, {torch.get_num_threads()} threads, '
          f'median s/step of {args.rounds} rounds x {args.steps} steps:')
    for name, values in times.items():
        median = sorted(values)[len(values) // 2]
        peak = '' if peaks[name] is None else (
            f'; peak {peaks[name]:,.0f} MiB ({peaks[name] / peaks["plain"]:.2f}x plain)')
        print(f'  {name:17s} {median:.4f} ({median / base:.2f}x plain){peak}; rounds: '
              + ', '.join(f'{v:.4f}' for v in values))
    activities = [ProfilerActivity.CPU]
    if torch.device(args.device).type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    for name, step in steps.items():
        if args.top <= 0:
            break
        with profile(activities=activities) as prof:
            for _ in range(3):
                step()
        print(f'\n{name}: top operators by self CPU time over 3 steps')
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=args.top))


def autocast_step(step, device: str, amp):
    """``step`` with its forward and backward under autocast to ``amp`` (``None``: as is)."""
    if amp is None:
        return step
    dtype = dict(fp16=torch.float16, bf16=torch.bfloat16)[amp]

    def autocast() -> None:
        with torch.autocast(torch.device(device).type, dtype=dtype):
            step()

    return autocast


def peak_step_mib(step, device: str):
    """Peak CUDA memory allocated over one ``step`` above what was allocated before it, in MiB
    (``None`` off CUDA)."""
    if torch.device(device).type != 'cuda':
        return None
    step()  # allocator warm, gradients allocated
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


if __name__ == '__main__':
    run_tool(main)
