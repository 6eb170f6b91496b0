# RepL-ResNet-20 trained from scratch on Fashion-MNIST (real 28x28 grey images, 10 classes), read
# by mmpretrain's FashionMNIST from data/fashion_mnist/ (written by tools/make_demo_data.py
# fashion-mnist from Debian's dataset-fashion-mnist). Over the CIFAR-10 recipe
# (repl_resnet32_cifar10.py); what differs: the data (one channel, its own mean / std, 28x28 crops),
# depth 20, and a short cosine schedule instead of 164 epochs.
_base_ = '../repl_resnet32_cifar10.py'

data_root = 'data/fashion_mnist/'
max_epochs = 2

model = dict(backbone=dict(depth=20, in_channels=1))
data_preprocessor = dict(num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=2),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
# mmpretrain 1.2.0's MNIST classes pick the t10k files by test_mode, not by split: a val set
# needs test_mode=True. download=False: the download URL is unreachable offline, and
# tools/train.py reports a missing data_root itself.
train_dataloader = dict(
    num_workers=1,
    dataset=dict(_delete_=True, type='FashionMNIST', data_root=data_root, split='train',
                 download=False, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256,
    num_workers=1,
    dataset=dict(_delete_=True, type='FashionMNIST', data_root=data_root, split='test',
                 test_mode=True, download=False, pipeline=test_pipeline))
test_dataloader = val_dataloader

param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=max_epochs))
randomness = dict(seed=0)
