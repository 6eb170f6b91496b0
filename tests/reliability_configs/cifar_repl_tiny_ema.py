# cifar_repl_tiny.py with an EMAHook, as upstream RTMDet, ConvNeXt and DeiT configs have one
# (momentum 0.5 here, so that a few iterations already set the averaged weights apart)
_base_ = './cifar_repl_tiny.py'
custom_hooks = [
    dict(type='ReplCheckpointHook'),
    dict(type='RNGStateHook'),
    dict(type='ReplNaNGuardHook'),
    dict(type='EMAHook', momentum=0.5, priority='ABOVE_NORMAL'),
]
