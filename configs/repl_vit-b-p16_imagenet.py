# RepL-ViT-B/16 on ImageNet-1k: mmpretrain's own ViT-B/16 config, with the encoder's layers
# 1, 3, 5, 7 and 9 replaced (the default plan; ViT's 12 layers count as one stage).
_base_ = ['mmpretrain::vision_transformer/vit-base-p16_64xb64_in1k.py', './_base_/repl_runtime.py']

model = dict(backbone=dict(type='RepLVisionTransformer', repl=dict()))

# RepL coefficients get no weight decay (the base's AdamW already exempts the class token and
# the position embedding).
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0.)}))
