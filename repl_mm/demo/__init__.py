"""Small demo datasets for smoke-training OpenMMLab models: COCO and Cityscapes layouts generated
from Fashion-MNIST items, and Fashion-MNIST itself in the layout mmpretrain reads."""
from .cityscapes_data import make_cityscapes_demo
from .coco_data import DEFAULT_CLASSES, FASHION_MNIST_CLASSES, make_coco_demo
from .fashion_mnist_data import make_fashion_mnist_demo

__all__ = ['DEFAULT_CLASSES', 'FASHION_MNIST_CLASSES', 'make_cityscapes_demo', 'make_coco_demo',
           'make_fashion_mnist_demo']
