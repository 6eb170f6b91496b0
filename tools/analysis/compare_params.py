"""Trainable parameters of a config's RepL model against the same model with the plain backbone.

    python tools/analysis/compare_params.py configs/demo/mask_rcnn_repl_r50_demo.py [...]

Prints one markdown table; counts come from the models built from the configs (no weights needed).
"""
import argparse

from mmengine.registry import MODELS, init_default_scope

import repl_mm  # noqa: F401
from repl_mm.analysis import count_parameters
from repl_mm.models import plain_model_cfg
from repl_mm.engine.cli import read_config, run_tool
from repl_mm.engine.explain_errors import explain_build_errors


def build(model_cfg, scope):
    init_default_scope(scope)
    return MODELS.build(model_cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='+')
    args = parser.parse_args()
    print('| config | backbone | backbone params | backbone trainable | synthesised '
          '| model trainable |')
    print('|---|---|---:|---:|---:|---:|')
    for path in args.configs:
        cfg = read_config(path)
        scope = cfg.get('default_scope', 'mmengine')
        with explain_build_errors(path):
            models = [(model_cfg, build(model_cfg, scope))
                      for model_cfg in (plain_model_cfg(cfg.model), cfg.model)]
        for model_cfg, model in models:
            counts = count_parameters(model)
            backbone, model = counts['backbone'], counts['model']
            print(f'| {path} | {model_cfg.backbone.type} | {backbone.parameters:,} | '
                  f'{backbone.trainable:,} | {backbone.synthesised:,} | {model.trainable:,} |')


if __name__ == '__main__':
    run_tool(main)
