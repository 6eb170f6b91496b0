auto_scale_lr = dict(base_batch_size=128)
custom_hooks = [
    dict(type='TrainingCostHook'),
]
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'repl_mm',
    ])
data_preprocessor = dict(
    mean=[
        72.94,
    ], num_classes=10, std=[
        90.02,
    ], to_rgb=False)
data_root = 'data/fashion_mnist/'
dataset_type = 'CIFAR10'
default_hooks = dict(
    checkpoint=dict(
        _scope_='mmpretrain',
        by_epoch=False,
        interval=800,
        max_keep_ckpts=1,
        type='CheckpointHook'),
    logger=dict(_scope_='mmpretrain', interval=50, type='LoggerHook'),
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
log_processor = dict(by_epoch=False)
max_epochs = 2
max_iters = 800
model = dict(
    backbone=dict(
        arch=dict(
            embed_dims=96, feedforward_channels=384, num_heads=3,
            num_layers=6),
        img_size=28,
        in_channels=1,
        patch_size=4,
        repl=dict(kind='removed'),
        type='RepLVisionTransformer'),
    head=dict(
        in_channels=96,
        loss=dict(loss_weight=1.0, type='CrossEntropyLoss'),
        num_classes=10,
        type='VisionTransformerClsHead'),
    neck=None,
    type='ImageClassifier')
optim_wrapper = dict(
    optimizer=dict(lr=0.001, type='AdamW', weight_decay=0.05),
    paramwise_cfg=dict(
        bias_decay_mult=0.0,
        custom_keys=dict({
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
            'repl_coefficients': dict(decay_mult=0.0)
        }),
        norm_decay_mult=0.0))
param_scheduler = [
    dict(begin=0, by_epoch=False, end=50, start_factor=0.1, type='LinearLR'),
    dict(
        begin=50,
        by_epoch=False,
        end=800,
        eta_min=0.0001,
        type='CosineAnnealingLR'),
]
randomness = dict(deterministic=False, seed=0)
resume = False
test_cfg = dict()
test_dataloader = dict(
    batch_size=256,
    dataset=dict(
        data_root='data/fashion_mnist/',
        download=False,
        pipeline=[
            dict(type='PackInputs'),
        ],
        split='test',
        test_mode=True,
        type='FashionMNIST'),
    num_workers=1,
    sampler=dict(_scope_='mmpretrain', shuffle=False, type='DefaultSampler'))
test_evaluator = dict(_scope_='mmpretrain', topk=(1, ), type='Accuracy')
test_pipeline = [
    dict(type='PackInputs'),
]
train_cfg = dict(max_iters=800, type='IterBasedTrainLoop', val_interval=800)
train_dataloader = dict(
    batch_size=128,
    dataset=dict(
        data_root='data/fashion_mnist/',
        download=False,
        pipeline=[
            dict(crop_size=28, padding=2, type='RandomCrop'),
            dict(direction='horizontal', prob=0.5, type='RandomFlip'),
            dict(type='PackInputs'),
        ],
        split='train',
        type='FashionMNIST'),
    num_workers=1,
    sampler=dict(_scope_='mmpretrain', shuffle=True, type='InfiniteSampler'))
train_pipeline = [
    dict(crop_size=28, padding=2, type='RandomCrop'),
    dict(direction='horizontal', prob=0.5, type='RandomFlip'),
    dict(type='PackInputs'),
]
val_cfg = dict()
val_dataloader = dict(
    batch_size=256,
    dataset=dict(
        data_root='data/fashion_mnist/',
        download=False,
        pipeline=[
            dict(type='PackInputs'),
        ],
        split='test',
        test_mode=True,
        type='FashionMNIST'),
    num_workers=1,
    sampler=dict(_scope_='mmpretrain', shuffle=False, type='DefaultSampler'))
val_evaluator = dict(_scope_='mmpretrain', topk=(1, ), type='Accuracy')
vis_backends = [
    dict(_scope_='mmpretrain', type='LocalVisBackend'),
]
visualizer = dict(
    _scope_='mmpretrain',
    type='UniversalVisualizer',
    vis_backends=[
        dict(type='LocalVisBackend'),
    ])
