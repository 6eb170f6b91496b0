# Accuracy benchmark (docs/benchmarks.md, benchmarks/benchmark_accuracy.py): a plain classic CIFAR
# ResNet-32 trained from scratch on Fashion-MNIST (real 28x28 grey images; 60k train / 10k test),
# batch 128, SGD 0.1 with 50 warm-up iterations and a cosine decay over 800 iterations (about 1.7
# epochs). The benchmark script turns it into each variant (RepL fused / light, blocks removed,
# a shallower plain network, stochastic depth) with --cfg-options, so every variant shares the
# data, schedule and seed handling.
_base_ = '../../configs/demo/repl_resnet_fashion_mnist_demo.py'

max_iters = 800
model = dict(backbone=dict(_delete_=True, type='CIFARResNet', depth=32, in_channels=1,
                           zero_init_residual=False))
train_dataloader = dict(batch_size=128, sampler=dict(type='InfiniteSampler', shuffle=True))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-4),
]
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='TrainingCostHook')]
