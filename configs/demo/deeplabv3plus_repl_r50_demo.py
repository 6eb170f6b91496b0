# DeepLabV3+ RepL-R50-D8 trained from scratch on the generated Cityscapes-layout demo set
# (tools/make_demo_data.py cityscapes: 40 train / 10 val street scenes of 128x256 with
# Fashion-MNIST objects, 19 Cityscapes train ids). Only the data scale, the norm layers (BN for
# CPU), the initialisation and the schedule differ from the Cityscapes config; norm_eval=False and
# the IoUMetric evaluator are the base's. Images are trained and evaluated at half size (64x128,
# whole images), so the demo trains in minutes on a CPU; mIoU is scored on the predictions
# resized back to 128x256.
_base_ = '../deeplabv3plus_repl_r50-d8_cityscapes-512x1024.py'

data_root = 'data/demo_cityscapes/'
image_scale = (128, 64)  # (width, height): half the generated 256x128
crop_size = (64, 128)  # (height, width)
max_iters = 100

# BN instead of the base's SyncBN: one CPU process has nothing to synchronise
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,  # from scratch: no ImageNet weights offline
    data_preprocessor=dict(size=crop_size),
    backbone=dict(norm_cfg=norm_cfg, init_cfg=None),
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
optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
