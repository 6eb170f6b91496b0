# The tiny RepL config without RNGStateHook: the control of the crash/resume check (a resumed run
# then draws other random numbers than the uninterrupted one).
_base_ = './cifar_repl_tiny.py'

custom_hooks = [dict(type='ReplCheckpointHook'), dict(type='ReplNaNGuardHook')]
