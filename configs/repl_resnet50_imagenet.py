# ImageNet-1k classification with a RepL-ResNet-50 backbone: mmpretrain's own ResNet-50 recipe
# (8 x 32 images, SGD 0.1, 100 epochs), with the backbone replaced by the default RepL plan
# (layer1[1], layer2[1], layer3[1, 3], layer4[1]).
_base_ = ['mmpretrain::resnet/resnet50_8xb32_in1k.py', './_base_/repl_runtime.py']

model = dict(backbone=dict(type='RepLResNet', repl=dict()))

# RepL coefficients get no weight decay: decay would pull (a, b) and with them the synthesised
# weights towards zero.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0.)}))
