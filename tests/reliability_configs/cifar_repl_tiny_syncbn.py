# The tiny RepL config with SyncBN, as mmseg's Cityscapes configs have it, and a replica check
# after every iteration: for 2-process CPU runs (tools/dist_train.sh), where repl-mm's launcher
# turns SyncBN into BN (torch's SyncBN refuses CPU tensors once a process group exists).
_base_ = './cifar_repl_tiny.py'

model = dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)))
custom_hooks = [
    dict(type='ReplCheckpointHook'),
    dict(type='RNGStateHook'),
    dict(type='ReplNaNGuardHook', replica_check_interval=1),
]
