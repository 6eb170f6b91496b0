auto_scale_lr = dict(base_batch_size=4096)
bgr_mean = [
    103.53,
    116.28,
    123.675,
]
bgr_std = [
    57.375,
    57.12,
    58.395,
]
custom_hooks = [
    dict(type='ReplCheckpointHook'),
    dict(type='RNGStateHook'),
    dict(type='TrainingCostHook'),
    dict(type='ReplNaNGuardHook'),
]
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'repl_mm',
    ])
data_preprocessor = dict(
    mean=[
        123.675,
        116.28,
        103.53,
    ],
    num_classes=1000,
    std=[
        58.395,
        57.12,
        57.375,
    ],
    to_rgb=True)
dataset_type = 'ImageNet'
default_hooks = dict(
    checkpoint=dict(_scope_='mmpretrain', interval=1, type='CheckpointHook'),
    logger=dict(_scope_='mmpretrain', interval=100, type='LoggerHook'),
    param_scheduler=dict(_scope_='mmpretrain', type='ParamSchedulerHook'),
    sampler_seed=dict(_scope_='mmpretrain', type='DistSamplerSeedHook'),
    timer=dict(_scope_='mmpretrain', type='IterTimerHook'),
    visualization=dict(
        _scope_='mmpretrain', enable=False, type='VisualizationHook'))
default_scope = 'mmpretrain'
env_cfg = dict(
    cudnn_benchmark=False,
    dist_cfg=dict(backend='nccl'),
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
load_from = None
log_level = 'INFO'
model = dict(
    _scope_='mmpretrain',
    backbone=dict(
        arch='b',
        drop_rate=0.1,
        img_size=224,
        init_cfg=[
            dict(
                layer='Conv2d',
                mode='fan_in',
                nonlinearity='linear',
                type='Kaiming'),
        ],
        patch_size=16,
        repl=dict(kind='fused', recompute=True),
        type='RepLVisionTransformer'),
    head=dict(
        hidden_dim=3072,
        in_channels=768,
        loss=dict(
            label_smooth_val=0.1, mode='classy_vision',
            type='LabelSmoothLoss'),
        num_classes=1000,
        type='VisionTransformerClsHead'),
    neck=None,
    train_cfg=dict(augments=dict(alpha=0.2, type='Mixup')),
    type='ImageClassifier')
optim_wrapper = dict(
    clip_grad=dict(max_norm=1.0),
    optimizer=dict(
        _scope_='mmpretrain', lr=0.003, type='AdamW', weight_decay=0.3),
    paramwise_cfg=dict(
        custom_keys=dict({
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
            'repl_coefficients': dict(decay_mult=0.0)
        })))
param_scheduler = [
    dict(
        _scope_='mmpretrain',
        begin=0,
        by_epoch=True,
        convert_to_iter_based=True,
        end=30,
        start_factor=0.0001,
        type='LinearLR'),
    dict(
        T_max=270,
        _scope_='mmpretrain',
        begin=30,
        by_epoch=True,
        end=300,
        type='CosineAnnealingLR'),
]
randomness = dict(deterministic=False, seed=None)
resume = False
test_cfg = dict()
test_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _scope_='mmpretrain',
        data_root='data/imagenet',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(
                backend='pillow',
                edge='short',
                interpolation='bicubic',
                scale=256,
                type='ResizeEdge'),
            dict(crop_size=224, type='CenterCrop'),
            dict(type='PackInputs'),
        ],
        split='val',
        type='ImageNet'),
    num_workers=5,
    sampler=dict(_scope_='mmpretrain', shuffle=False, type='DefaultSampler'))
test_evaluator = dict(
    _scope_='mmpretrain', topk=(
        1,
        5,
    ), type='Accuracy')
test_pipeline = [
    dict(_scope_='mmpretrain', type='LoadImageFromFile'),
    dict(
        _scope_='mmpretrain',
        backend='pillow',
        edge='short',
        interpolation='bicubic',
        scale=256,
        type='ResizeEdge'),
    dict(_scope_='mmpretrain', crop_size=224, type='CenterCrop'),
    dict(_scope_='mmpretrain', type='PackInputs'),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _scope_='mmpretrain',
        data_root='data/imagenet',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(
                backend='pillow',
                interpolation='bicubic',
                scale=224,
                type='RandomResizedCrop'),
            dict(direction='horizontal', prob=0.5, type='RandomFlip'),
            dict(
                hparams=dict(
                    interpolation='bicubic', pad_val=[
                        104,
                        116,
                        124,
                    ]),
                policies='imagenet',
                type='AutoAugment'),
            dict(type='PackInputs'),
        ],
        split='train',
        type='ImageNet'),
    num_workers=5,
    sampler=dict(_scope_='mmpretrain', shuffle=True, type='DefaultSampler'))
train_pipeline = [
    dict(_scope_='mmpretrain', type='LoadImageFromFile'),
    dict(
        _scope_='mmpretrain',
        backend='pillow',
        interpolation='bicubic',
        scale=224,
        type='RandomResizedCrop'),
    dict(
        _scope_='mmpretrain',
        direction='horizontal',
        prob=0.5,
        type='RandomFlip'),
    dict(
        _scope_='mmpretrain',
        hparams=dict(interpolation='bicubic', pad_val=[
            104,
            116,
            124,
        ]),
        policies='imagenet',
        type='AutoAugment'),
    dict(_scope_='mmpretrain', type='PackInputs'),
]
val_cfg = dict()
val_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _scope_='mmpretrain',
        data_root='data/imagenet',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(
                backend='pillow',
                edge='short',
                interpolation='bicubic',
                scale=256,
                type='ResizeEdge'),
            dict(crop_size=224, type='CenterCrop'),
            dict(type='PackInputs'),
        ],
        split='val',
        type='ImageNet'),
    num_workers=5,
    sampler=dict(_scope_='mmpretrain', shuffle=False, type='DefaultSampler'))
val_evaluator = dict(
    _scope_='mmpretrain', topk=(
        1,
        5,
    ), type='Accuracy')
vis_backends = [
    dict(_scope_='mmpretrain', type='LocalVisBackend'),
]
visualizer = dict(
    _scope_='mmpretrain',
    type='UniversalVisualizer',
    vis_backends=[
        dict(type='LocalVisBackend'),
    ])
