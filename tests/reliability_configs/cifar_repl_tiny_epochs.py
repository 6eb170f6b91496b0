# The tiny RepL config with an epoch-based loop (DefaultSampler, checkpoints at each epoch's end):
# the resume path of mmengine's EpochBasedTrainLoop, for the crash/resume check.
_base_ = './cifar_repl_tiny.py'

train_cfg = dict(_delete_=True, by_epoch=True, max_epochs=3, val_interval=1)
train_dataloader = dict(sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=3)]
default_hooks = dict(checkpoint=dict(by_epoch=True, interval=1))
log_processor = dict(by_epoch=True)
