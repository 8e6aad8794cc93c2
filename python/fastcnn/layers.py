"""fastcnn.layers: the reference layer classes running on the fast backend.

Same class names, constructor signatures, attributes and methods as fastcnn.reference.layers:
each class here subclasses its reference twin and only swaps the functional module ``F`` for
fastcnn.functional. Layers read ``self.W`` / ``self.b`` at every call and cache nothing derived
from them, so in-place updates and reassignment by an optimizer are always seen.
"""

from __future__ import annotations

from fastcnn import functional as _functional
from fastcnn.reference import layers as _reference

__all__ = [
    "Layer",
    "Convolution",
    "Pooling",
    "AvgPooling",
    "Affine",
    "Relu",
    "Sigmoid",
    "SoftmaxWithLoss",
    "Dropout",
    "BatchNormalization",
    "SpatialBatchNormalization",
    "LAYER_CLASSES",
]


class Layer(_reference.Layer):
    F = _functional


class Convolution(_reference.Convolution, Layer):
    __doc__ = _reference.Convolution.__doc__


class Pooling(_reference.Pooling, Layer):
    __doc__ = _reference.Pooling.__doc__


class AvgPooling(_reference.AvgPooling, Layer):
    __doc__ = _reference.AvgPooling.__doc__


class Affine(_reference.Affine, Layer):
    __doc__ = _reference.Affine.__doc__


class Relu(_reference.Relu, Layer):
    __doc__ = _reference.Relu.__doc__


class Sigmoid(_reference.Sigmoid, Layer):
    __doc__ = _reference.Sigmoid.__doc__


class SoftmaxWithLoss(_reference.SoftmaxWithLoss, Layer):
    __doc__ = _reference.SoftmaxWithLoss.__doc__


class Dropout(_reference.Dropout, Layer):
    __doc__ = _reference.Dropout.__doc__


class BatchNormalization(_reference.BatchNormalization, Layer):
    __doc__ = _reference.BatchNormalization.__doc__


class SpatialBatchNormalization(_reference.SpatialBatchNormalization, Layer):
    __doc__ = _reference.SpatialBatchNormalization.__doc__


LAYER_CLASSES = (
    Convolution,
    Pooling,
    AvgPooling,
    Affine,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
    Dropout,
    BatchNormalization,
    SpatialBatchNormalization,
)
