# The demo Mask R-CNN RepL-R50 (configs/demo) with RNGStateHook, short enough for the crash/resume
# check (tools/crash_resume_check.py --checkpoint iter_2.pth): 4 iterations of 2 images,
# checkpoints and validation every 2. Point the data roots at a generated COCO-layout set.
_base_ = '../../configs/demo/mask_rcnn_repl_r50_demo.py'

custom_imports = dict(imports=['repl_mm', 'repl_mm.engine.hooks.rng_state_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='ReplCheckpointHook'), dict(type='RNGStateHook')]

train_dataloader = dict(batch_size=2)
train_cfg = dict(max_iters=4, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=-1))
