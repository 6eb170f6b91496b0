# The Mask R-CNN RepL-R50 demo (configs/demo/mask_rcnn_repl_r50_demo.py) as it is, plus
# TrainingCostHook (peak memory, trainable parameters in the log). RepL side of
# tools/benchmark_tasks.py; its plain twin is demo_mask_rcnn_r50.py.
_base_ = '../demo/mask_rcnn_repl_r50_demo.py'

custom_hooks = [dict(type='ReplCheckpointHook'), dict(type='TrainingCostHook')]
