# UPerNet RepL-Swin-T trained from scratch on the generated Cityscapes-layout demo set
# (tools/make_demo_data.py cityscapes). Over upernet_repl_swin-t_cityscapes-512x1024.py; what
# differs is what the DeepLabV3+ demo (deeplabv3plus_repl_r50_demo.py) changes: the data scale
# (whole images at half size, 64x128), BN instead of SyncBN in the heads, no pretrained weights,
# and a 100-iteration schedule (AdamW as in the base, with a higher lr for training from scratch).
_base_ = '../upernet_repl_swin-t_cityscapes-512x1024.py'

data_root = 'data/demo_cityscapes/'
image_scale = (128, 64)  # (width, height): half the generated 256x128
crop_size = (64, 128)  # (height, width)
max_iters = 100

# BN instead of the base's SyncBN: one CPU process has nothing to synchronise
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None, drop_path_rate=0.1),
    decode_head=dict(norm_cfg=norm_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=image_scale, ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=3e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10),
    dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=10, end=max_iters, by_epoch=False)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
