"""Log what training costs: peak memory, parameter and optimizer-state sizes, RepL coefficients,
and at an interval the memory ledger of a whole step."""
import functools
import time
from typing import Dict, List, Optional

from mmengine.hooks import Hook, LoggerHook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from repl_core import replaced_blocks
from ..cost_figures import coefficient_means, state_costs, structure_costs, torch_optimizers
from ..ledger import LedgerResult, StepLedger
from ..memory import MIB, CudaPeakMemory, PeakMemoryMeter, peak_memory_meter


@HOOKS.register_module()
class TrainingCostHook(Hook):
    """At every training log line, put the training's costs into the message hub.

    Enable with ``custom_hooks = [dict(type='TrainingCostHook')]``. Every value goes through
    ``runner.message_hub.update_scalar('train/<key>', value)`` before ``LoggerHook`` runs, so it
    reaches the text log, ``vis_data/scalars.json`` and every visualizer backend as ``<key>``:

    * peak memory since the previous log line, in MiB: ``cost/cuda_peak_allocated_mb`` and
      ``cost/cuda_peak_reserved_mb`` on CUDA, ``cost/cpu_peak_rss_mb`` (the process's peak
      resident set size) on CPU (``repl_mm.engine.memory.PeakMemoryMeter``);
    * ``cost/params_synthesised`` (values computed from neighbours, not stored) and
      ``cost/replaced_blocks``: written once at the start of training;
      ``cost/params_trainable``, ``cost/params_frozen``, ``cost/grad_bytes`` and
      ``cost/optimizer_state_bytes``: at the start and at each log line where they changed (e.g.
      the optimizer state after the first step). Every log line shows the latest value;
    * ``repl/<block path>/a`` and ``repl/<block path>/b``: the mean of each replaced block's
      coefficients (e.g. ``repl/backbone.layer3.3/a``);
    * with ``ledger_interval``: every ``ledger_interval`` iterations, the iteration's train step
      runs inside ``repl_mm.engine.ledger.StepLedger`` and the hook logs the ledger at the
      step's peak, in MiB: ``cost/ledger/<category>_mb`` for every category (parameters,
      gradients, optimizer_state, synthesised_weights, autocast_weight_copies,
      gradient_buckets, activations, gradients_in_flight, optimizer_temporaries, other),
      ``cost/ledger/peak_mb`` (their sum), ``cost/ledger/saved_for_backward_mb`` (all the
      forward pass saved for backward), ``cost/ledger/flops_forward`` / ``flops_backward`` and
      ``cost/ledger/step_s`` (the ledgered step's time: it runs slower, see
      docs/cost_tools.md).

    Args:
        interval (int, optional): log every ``interval`` training iterations. ``None`` (default):
            exactly at the ``LoggerHook``'s training log lines.
        sample_period (float): seconds between samples of the resident set size where the
            kernel's own peak (``VmHWM``) cannot be reset; unused otherwise.
        ledger_interval (int, optional): run the memory ledger every ``ledger_interval``
            training iterations. ``None`` (default): never.
    """

    priority = 'NORMAL'  # above LoggerHook (BELOW_NORMAL): values are in before it logs

    def __init__(self, interval: Optional[int] = None, sample_period: float = 0.02,
                 ledger_interval: Optional[int] = None) -> None:
        for name, value in (('interval', interval), ('ledger_interval', ledger_interval)):
            if value is not None and value < 1:
                raise ValueError(f'TrainingCostHook: {name} must be >= 1 or None, got {value}.')
        self.interval = interval
        self.ledger_interval = ledger_interval
        self.sample_period = sample_period
        self._meter: Optional[PeakMemoryMeter] = None
        self._logger_hook: Optional[LoggerHook] = None
        self._blocks: List = []
        self._counts: Dict[str, int] = {}

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._blocks = replaced_blocks(model)
        self._logger_hook = next((h for h in runner.hooks if isinstance(h, LoggerHook)), None)
        device = next(model.parameters()).device
        self._meter = peak_memory_meter(device, self.sample_period)
        self._meter.reset()
        runner.logger.info(
            f'TrainingCostHook: peak memory from {self._describe_source()}; '
            f'{len(self._blocks)} replaced blocks; logged '
            + ('at every log line' if self.interval is None else
               f'every {self.interval} iterations')
            + ('.' if self.ledger_interval is None else
               f'; memory ledger every {self.ledger_interval} iterations.'))
        for key, value in structure_costs(model).items():
            runner.message_hub.update_scalar(f'train/cost/{key}', value)
        self._counts = {}
        self._update_counts(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.ledger_interval and self.every_n_train_iters(runner, self.ledger_interval):
            self._ledger_next_step(runner)

    def _ledger_next_step(self, runner) -> None:
        """Run the iteration's ``train_step`` (only that one) inside a ``StepLedger``: the
        runner's model gets a wrapper that removes itself, whatever the step does."""
        wrapped = runner.model
        model = wrapped.module if is_model_wrapper(wrapped) else wrapped
        train_step = wrapped.train_step

        @functools.wraps(train_step)
        def ledgered_step(*args, **kwargs):
            del wrapped.train_step  # back to the class's method
            ledger = StepLedger(model, torch_optimizers(runner.optim_wrapper))
            start = time.perf_counter()
            try:
                with ledger:
                    return train_step(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - start
                self._log_ledger(runner, ledger.result(), seconds)
                ledger.close()

        wrapped.train_step = ledgered_step

    @staticmethod
    def _log_ledger(runner, result: LedgerResult, seconds: float) -> None:
        hub = runner.message_hub
        for category, value in result.peak.by_category().items():
            hub.update_scalar(f'train/cost/ledger/{category}_mb', value / MIB)
        hub.update_scalar('train/cost/ledger/peak_mb', result.peak.total / MIB)
        hub.update_scalar('train/cost/ledger/saved_for_backward_mb',
                          sum(result.saved_by_category().values()) / MIB)
        for phase in ('forward', 'backward'):
            hub.update_scalar(f'train/cost/ledger/flops_{phase}', result.total_flops(phase))
        hub.update_scalar('train/cost/ledger/step_s', seconds)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._due(runner, batch_idx):
            return
        hub = runner.message_hub
        # mmengine's LogProcessor reads and resets the CUDA peaks itself at its log lines
        reset = not (isinstance(self._meter, CudaPeakMemory)
                     and self._logger_logs(runner, batch_idx))
        for key, value in self._meter.read(reset=reset).items():
            hub.update_scalar(f'train/cost/{key}', value)
        self._update_counts(runner)
        for path, (a, b) in coefficient_means(self._blocks).items():
            hub.update_scalar(f'train/repl/{path}/a', a)
            hub.update_scalar(f'train/repl/{path}/b', b)

    def after_train(self, runner) -> None:
        if self._meter is not None:
            self._meter.close()

    def _update_counts(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        counts = state_costs(model, torch_optimizers(runner.optim_wrapper))
        for key, value in counts.items():
            if self._counts.get(key) != value:
                runner.message_hub.update_scalar(f'train/cost/{key}', value)
        self._counts = counts

    def _logger_logs(self, runner, batch_idx: int) -> bool:
        """Whether ``LoggerHook`` writes a training log line after this iteration (its own
        condition)."""
        logger = self._logger_hook
        if logger is None:
            return False
        if logger.every_n_inner_iters(batch_idx, logger.interval):
            return True
        return (logger.end_of_epoch(runner.train_dataloader, batch_idx)
                and (not logger.ignore_last or len(runner.train_dataloader) <= logger.interval))

    def _due(self, runner, batch_idx: int) -> bool:
        if self.interval is not None:
            return self.every_n_train_iters(runner, self.interval)
        return self._logger_logs(runner, batch_idx)

    def _describe_source(self) -> str:
        return {'cuda': 'torch.cuda max_memory_allocated / max_memory_reserved',
                'vmhwm': "the kernel's peak resident set size (VmHWM), reset at each line",
                'sampled': f'the resident set size sampled every {self.sample_period * 1e3:g} '
                           f'ms (VmHWM cannot be reset here)',
                None: 'nowhere (no /proc on this system): no CPU memory is logged'
                }[self._meter.source]
