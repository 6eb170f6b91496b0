# Mask R-CNN RepL-Swin-T trained from scratch on the generated COCO-layout demo set: the R50 demo's
# data, image scale, proposal budget and schedule (mask_rcnn_repl_r50_demo.py) with the backbone,
# neck and optimizer of mask_rcnn_repl_swin-t-p4-w7_fpn_1x_coco.py (Swin-T, default plan
# stages.2 blocks 1 and 3; AdamW, no decay for norms, position tables and coefficients).
_base_ = './mask_rcnn_repl_r50_demo.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='RepLSwinTransformer',
        repl=dict(),
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        drop_path_rate=0.1,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        init_cfg=None),  # from scratch: no ImageNet weights offline
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=10.0),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
            'repl_coefficients': dict(decay_mult=0.)
        }))
