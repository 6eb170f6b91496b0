"""Record every RepL backbone's replacement in the checkpoint meta."""
from typing import Any, Dict

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class ReplCheckpointHook(Hook):
    """Write ``checkpoint['meta']['repl'] = {module path: plan, kind, granularity, ...}``.

    The meta tells a reader (``tools/fold.py``, a person) how the checkpoint's model was replaced
    without building it. Loading into a model with another plan is refused by the backbone's own
    state-dict guard, on every loading path, whether or not this hook ran.
    """

    priority = 'LOW'

    def before_save_checkpoint(self, runner, checkpoint: Dict[str, Any]) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        replaced = {path or '.': module.repl_meta() for path, module in model.named_modules()
                    if callable(getattr(module, 'repl_meta', None))}
        if replaced:
            checkpoint.setdefault('meta', {})['repl'] = replaced
