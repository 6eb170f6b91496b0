# Mask R-CNN with a RepL-ResNet-50 backbone on COCO 2017: mmdet's own 1x config, with the backbone
# replaced by the default RepL plan (layer1[1], layer2[1], layer3[1, 3], layer4[1]).
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', './_base_/repl_runtime.py']

model = dict(backbone=dict(type='RepLResNet', repl=dict()))

# RepL coefficients get no weight decay: decay would pull (a, b) and with them the synthesised
# weights towards zero.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0.)}))
