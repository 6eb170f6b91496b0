"""Never delete the last complete checkpoint before the next one is written.

mmengine's ``CheckpointHook`` with ``max_keep_ckpts`` removes the oldest kept checkpoint *before*
writing the new one, so with ``max_keep_ckpts=1`` a write that fails (disk full, quota) leaves no
checkpoint at all. ``ReplSafeCheckpointHook`` writes first and removes afterwards, removes the
incomplete file of a failed write, and says which checkpoint is intact.
"""
from typing import List

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from repl_mm.engine.checkpoint_files import last_complete_checkpoint
from repl_mm.engine.explain_errors import CheckpointWriteError


@HOOKS.register_module()
class ReplSafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that never leaves a run without its last complete checkpoint.

    Same arguments and files as mmengine's hook; only the order differs: the new checkpoint is
    written first, then ``last_checkpoint`` points at it, then checkpoints beyond
    ``max_keep_ckpts`` are removed. A write that fails (``OSError``: disk full, quota, file size
    limit) removes its incomplete file and raises ``CheckpointWriteError`` naming the intact
    checkpoint to resume from. Use it as ``default_hooks.checkpoint.type``.
    """

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        keep = self.max_keep_ckpts
        kept = list(getattr(self, 'keep_ckpt_ids', []))
        stale: List[int] = []
        if keep > 0 and not (kept and kept[-1] == step):
            stale = kept[:max(len(kept) + 1 - keep, 0)]
            kept = (kept + [step])[-keep:]
            # recorded before saving, as mmengine does, so the checkpoint knows its own id
            runner.message_hub.update_info('keep_ckpt_ids', kept)
        path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(step))
        self.max_keep_ckpts = -1  # the parent saves and updates last_checkpoint, removes nothing
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
        except OSError as error:
            self._fail(runner, path, error)
        finally:
            self.max_keep_ckpts = keep
        if keep > 0:
            self.keep_ckpt_ids.clear()
            self.keep_ckpt_ids.extend(kept)
        if is_main_process():
            for old in stale:
                old_path = self.file_backend.join_path(self.out_dir,
                                                       self.filename_tmpl.format(old))
                if self.file_backend.isfile(old_path):
                    self.file_backend.remove(old_path)
                elif self.file_backend.isdir(old_path):
                    self.file_backend.rmtree(old_path)

    def _fail(self, runner, path: str, error: OSError) -> None:
        removed = ''
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
            removed = ' Its incomplete file was removed.'
        last = last_complete_checkpoint(runner.work_dir)
        intact = (f'The last complete checkpoint is {last}, left as it was.' if last else
                  'No checkpoint was written before.')
        raise CheckpointWriteError(
            f'Could not write the checkpoint {path}: {error.strerror or error} '
            f'(errno {error.errno}).{removed} Training stopped at iteration {runner.iter + 1}. '
            f'{intact} Free space in {self.out_dir} (or point --work-dir elsewhere) and resume '
            f'with --resume.', path=path, errno=error.errno, removed=bool(removed),
            iteration=runner.iter + 1, last_checkpoint=last) from error
