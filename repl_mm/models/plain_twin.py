"""The plain twin of a RepL model: the same config with the upstream backbone class."""
import copy

from repl_core import ReplError


def plain_model_cfg(model_cfg: dict) -> dict:
    """The same model with its RepL backbone swapped for the upstream class it extends.

    ``RepLResNet`` -> ``ResNet``, ``mmpretrain.RepLResNet`` -> ``mmpretrain.ResNet``; the
    ``repl`` argument is dropped, every other argument kept.
    """
    cfg = copy.deepcopy(model_cfg)
    backbone = cfg.get('backbone')
    if not backbone or 'RepL' not in str(backbone.get('type', '')):
        raise ReplError(f'The model has no RepL backbone (backbone type '
                        f'{backbone.get("type") if backbone else None!r}): this needs a RepL '
                        f"config, whose backbone is a RepL class (e.g. type='RepLResNet' with "
                        f'repl=dict()).')
    scope, _, name = str(backbone['type']).rpartition('.')
    backbone['type'] = (f'{scope}.' if scope else '') + name.replace('RepL', '', 1)
    backbone.pop('repl', None)
    return cfg
