# Plain twin of configs/demo/deeplabv3plus_repl_r50_demo.py: mmseg's ResNetV1c-50 (D8) with
# exactly the RepL backbone's other arguments (what repl_mm.models.plain_model_cfg makes of it;
# a test checks they agree), the same data, schedule, seed and hooks.
_base_ = '../../configs/demo/deeplabv3plus_repl_r50_demo.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNetV1c',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        contract_dilation=True,
        init_cfg=None))
