# A small RepL-ViT trained from scratch on Fashion-MNIST (data/fashion_mnist/, see
# repl_resnet_fashion_mnist_demo.py): ours, like repl_vit-s-p4_cifar10.py, since mmpretrain has no
# ViT for 28x28 images: 4x4 patches (49 tokens + class token), 96 dims, 6 layers, 3 heads, MLP
# 384; the default plan replaces layers 1 and 3. Over the ResNet demo; what differs: the model and
# AdamW (no decay for the class token, position embedding, norms, biases and coefficients).
_base_ = './repl_resnet_fashion_mnist_demo.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='RepLVisionTransformer',
        repl=dict(),
        in_channels=1,
        img_size=28,
        patch_size=4,
        arch=dict(embed_dims=96, num_layers=6, num_heads=3, feedforward_channels=384)),
    neck=None,
    head=dict(
        _delete_=True,
        type='VisionTransformerClsHead',
        num_classes=10,
        in_channels=96,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
            'repl_coefficients': dict(decay_mult=0.0)
        }))
