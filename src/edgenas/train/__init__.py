"""Datasets and the shared trainer (SGD + cosine, AMP, channels_last, exact resume, DDP through torchrun)."""

from edgenas.train.checkpoint import load_checkpoint, save_checkpoint
from edgenas.train.data import (
    BatchTransform,
    FixedOrderBatches,
    ImageData,
    balanced_subset,
    load_cifar10,
    load_dataset,
    load_image_folder,
    stratified_split,
)
from edgenas.train.trainer import TrainCallback, TrainConfig, TrainResult, evaluate, train

__all__ = [
    "BatchTransform",
    "FixedOrderBatches",
    "ImageData",
    "TrainCallback",
    "TrainConfig",
    "TrainResult",
    "balanced_subset",
    "evaluate",
    "load_checkpoint",
    "load_cifar10",
    "load_dataset",
    "load_image_folder",
    "save_checkpoint",
    "stratified_split",
    "train",
]
