"""Small synthetic-but-real demo datasets (COCO layout) for smoke-training OpenMMLab models."""
from .coco_data import DEFAULT_CLASSES, FASHION_MNIST_CLASSES, make_coco_demo

__all__ = ['DEFAULT_CLASSES', 'FASHION_MNIST_CLASSES', 'make_coco_demo']
