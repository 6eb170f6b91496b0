# DeepLabV3+ with a RepL-ResNet-50-D8 (ResNetV1c, dilated layer3/layer4) backbone on Cityscapes:
# mmseg's own 80k config, with the backbone replaced by the default RepL plan (layer1[1],
# layer2[1], layer3[1, 3], layer4[1]). The base's SyncBN is kept (see docs/configs.md for CPU).
_base_ = ['mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py', './_base_/repl_runtime.py']

model = dict(backbone=dict(type='RepLResNetV1c', repl=dict()))

# RepL coefficients get no weight decay: decay would pull (a, b) and with them the synthesised
# weights towards zero.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0.)}))
