# Plain twin of configs/demo/mask_rcnn_repl_r50_demo.py: mmdet's ResNet-50 with exactly the
# RepL backbone's other arguments (what repl_mm.models.plain_model_cfg makes of it; a test checks
# they agree), the same data, schedule, seed and hooks.
_base_ = '../../configs/demo/mask_rcnn_repl_r50_demo.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None))
