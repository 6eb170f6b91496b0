"""Small demo datasets for smoke-training OpenMMLab models: COCO and Cityscapes layouts generated
from Fashion-MNIST items, and Fashion-MNIST itself in the layout mmpretrain reads.

Every generator reads Fashion-MNIST through ``fashion_mnist_source``, skips a set that is already
up to date and returns the same summary (``generator_record``)."""
from .cityscapes_data import make_cityscapes_demo
from .coco_data import DEFAULT_CLASSES, make_coco_demo
from .fashion_mnist_data import make_fashion_mnist_demo
from .fashion_mnist_source import DEFAULT_FMNIST_DIR, FASHION_MNIST_CLASSES

__all__ = ['DEFAULT_CLASSES', 'DEFAULT_FMNIST_DIR', 'FASHION_MNIST_CLASSES',
           'make_cityscapes_demo', 'make_coco_demo', 'make_fashion_mnist_demo']
