# RepL-ResNet-32 on CIFAR-10 with the classic CIFAR recipe of He et al. 2016 ("Deep Residual
# Learning for Image Recognition", section 4.2), the setting of RepL v1's CIFAR experiments.
#
# The paper's recipe: the 6n+2 CIFAR ResNet (a 3x3 stem of 16 channels, 3 stages of n
# BasicBlocks with 16/32/64 channels, global average pooling, a 10-way linear classifier); He
# initialisation, BN, no dropout; SGD, lr 0.1, momentum 0.9, weight decay 1e-4, batch 128; lr / 10
# at 32k and 48k iterations, stop at 64k; training images padded by 4 pixels, a random 32x32 crop
# and a random horizontal flip; the single original 32x32 view at test time.
#
# Our choices: train on all 50k training images (the paper held out 5k for validation) and
# evaluate on the 10k test images after every epoch; at 391 iterations an epoch the schedule is
# 164 epochs with lr / 10 at epochs 82 and 123 (= 64k, 32k and 48k iterations); projection (1x1
# conv) shortcuts where the shape changes (option B; the paper's CIFAR nets used option A, zero-
# padded identities); per-channel mean / std normalisation (mmpretrain's CIFAR-10 statistics)
# instead of per-pixel mean subtraction; no zero-init of each block's last BN (the paper has none;
# mmpretrain's ResNet would do it by default). RepL: the default plan (blocks 1 and 3 of each
# stage: 6 of 15 blocks), coefficients without weight decay.
#
# Data: data/cifar10/cifar-10-batches-py/ (the Python version). mmpretrain's CIFAR10 downloads it
# when missing, which is impossible offline: extract cifar-10-python.tar.gz there yourself.
_base_ = [
    'mmpretrain::_base_/datasets/cifar10_bs16.py',
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
    './_base_/repl_runtime.py'
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='RepLCIFARResNet', depth=32, zero_init_residual=False, repl=dict()),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

# batch 128; the dataset's pipelines (RandomCrop 32 padding 4, RandomFlip 0.5) are the paper's
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

# SGD 0.1 / 0.9 / 1e-4 from the schedule base. RepL coefficients get no weight decay: decay would
# pull (a, b) and with them the synthesised weights towards zero.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0.)}))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[82, 123], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=164, val_interval=1)

default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3))
