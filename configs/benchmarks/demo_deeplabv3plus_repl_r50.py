# The DeepLabV3+ RepL-R50-D8 demo (configs/demo/deeplabv3plus_repl_r50_demo.py) as it is, plus
# TrainingCostHook (peak memory, trainable parameters in the log). RepL side of
# tools/benchmark_tasks.py; its plain twin is demo_deeplabv3plus_r50.py.
_base_ = '../demo/deeplabv3plus_repl_r50_demo.py'

custom_hooks = [dict(type='ReplCheckpointHook'), dict(type='TrainingCostHook')]
