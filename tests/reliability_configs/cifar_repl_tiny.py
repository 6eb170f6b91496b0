# A classic CIFAR RepL-ResNet-20 (mmpretrain) on 32x32 generated images: the smallest real RepL
# training, for reliability tests (crash and resume, distributed, bad input). Every source of
# randomness of a real run is in it: a shuffling InfiniteSampler, RandomFlip (numpy), Mixup
# (numpy and the global torch generator), drop path (torch). Generate the data with
# tests/reliability_configs/common.py and point data_root at it.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(
    imports=['repl_mm', 'repl_mm.engine.hooks.rng_state_hook',
             'repl_mm.engine.hooks.nan_guard_hook'],
    allow_failed_imports=False)

data_root = 'data/tiny_cls/'
max_iters = 12

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(num_classes=4, mean=[127.5] * 3, std=[64.0] * 3, to_rgb=False),
    # default plan: layer1[1], layer2[1], layer3[1]
    backbone=dict(type='RepLCIFARResNet', depth=20, drop_path_rate=0.1, repl=dict()),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=4, in_channels=64,
              loss=dict(type='CrossEntropyLoss', use_soft=True)),
    train_cfg=dict(augments=dict(type='Mixup', alpha=0.4)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix=dict(img_path='train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix=dict(img_path='val'),
                 pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

train_cfg = dict(by_epoch=False, max_iters=max_iters, val_interval=4)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=4, end=max_iters, eta_min=1e-3),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4))
# window_size=1: the logged loss is each iteration's own, so loss curves compare exactly
log_processor = dict(by_epoch=False, window_size=1)
custom_hooks = [
    dict(type='ReplCheckpointHook'),
    dict(type='RNGStateHook'),
    dict(type='ReplNaNGuardHook'),
]
randomness = dict(seed=0, deterministic=True)
