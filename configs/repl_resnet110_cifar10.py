# RepL-ResNet-110 on CIFAR-10: the ResNet-32 recipe (repl_resnet32_cifar10.py, He et al. 2016,
# section 4.2) with depth 110. For 110 layers the paper warms up at lr 0.01 "until the training
# error is below 80% (about 400 iterations)", then returns to 0.1; we warm up for a fixed 400
# iterations. RepL: the default plan replaces blocks 1, 3, ..., 15 of each 18-block stage
# (24 of 54 blocks).
_base_ = './repl_resnet32_cifar10.py'

model = dict(backbone=dict(depth=110))

param_scheduler = [
    dict(type='ConstantLR', factor=0.1, by_epoch=False, begin=0, end=400),
    dict(type='MultiStepLR', by_epoch=True, milestones=[82, 123], gamma=0.1),
]
