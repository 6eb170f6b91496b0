# Accuracy benchmark (docs/benchmarks.md, benchmarks/benchmark_accuracy.py): a small plain ViT
# (ours: 4x4 patches of the 28x28 images, i.e. 49 tokens + class token; 96 dims, 6 layers,
# 3 heads, MLP 384) trained from scratch on Fashion-MNIST, batch 128, AdamW 1e-3 with 50 warm-up
# iterations and a cosine decay over 800 iterations. The benchmark script makes each variant with
# --cfg-options.
_base_ = './fashion_mnist_resnet32.py'

model = dict(
    backbone=dict(_delete_=True, type='VisionTransformer', in_channels=1, img_size=28,
                  patch_size=4, arch=dict(embed_dims=96, num_layers=6, num_heads=3,
                                          feedforward_channels=384)),
    neck=None,
    head=dict(_delete_=True, type='VisionTransformerClsHead', num_classes=10, in_channels=96,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0,
        custom_keys={'.cls_token': dict(decay_mult=0.0), '.pos_embed': dict(decay_mult=0.0),
                     'repl_coefficients': dict(decay_mult=0.0)}))
