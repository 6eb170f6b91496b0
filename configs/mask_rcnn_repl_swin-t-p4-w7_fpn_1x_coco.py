# Mask R-CNN with a RepL-Swin-T backbone on COCO 2017: mmdet's own Swin-T 1x config, with the
# backbone replaced by the default RepL plan (stages.2 blocks 1 and 3: stages of 2 blocks keep
# theirs, since a replaced block needs two neighbours inside its stage).
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', './_base_/repl_runtime.py']

model = dict(backbone=dict(type='RepLSwinTransformer', repl=dict()))

# RepL coefficients get no weight decay (the base already exempts norms and position tables).
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0.)}))
