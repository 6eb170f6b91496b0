# RepL-ViT on CIFAR-10 from scratch. mmpretrain has no CIFAR ViT config, so this one is ours:
# a ViT-S-sized encoder (384 dims, 12 layers, 6 heads, MLP 1536) on 4x4 patches of the 32x32
# images (64 tokens + class token), AdamW (lr 1e-3, weight decay 0.05, batch 128) with 10 warm-up
# epochs and a cosine decay over 200 epochs, random crop 32 pad 4 + flip, label smoothing 0.1.
# RepL: the default plan (layers 1, 3, 5, 7, 9), coefficients without weight decay.
_base_ = [
    'mmpretrain::_base_/datasets/cifar10_bs16.py',
    'mmpretrain::_base_/default_runtime.py',
    './_base_/repl_runtime.py'
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='RepLVisionTransformer',
        repl=dict(),
        arch=dict(embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536),
        img_size=32,
        patch_size=4,
        drop_path_rate=0.1),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=10,
        in_channels=384,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')))

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
            'repl_coefficients': dict(decay_mult=0.0)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=190, by_epoch=True, begin=10, end=200, eta_min=1e-5)
]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3))
