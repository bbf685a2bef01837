"""CIFAR data: loaders for every common layout with a decoded-array cache, downloads with checksum
verification, stratified subsets / validation splits, and a device-resident batch loader with
vectorised augmentation (random crop with zero padding 4, horizontal flip) and normalisation.

Main names: :func:`load_cifar`, :func:`download_cifar`, :func:`stratified_subset`,
:func:`train_val_split`, :class:`TensorLoader`.
"""

from .cifar import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    CIFAR_MD5,
    CIFAR_URLS,
    DATASETS,
    SPLITS,
    ChecksumError,
    CifarSource,
    CorruptArchiveError,
    DataNotFoundError,
    cache_dir,
    candidate_roots,
    download_cifar,
    find_cifar,
    load_cifar,
    num_classes,
)
from .splits import class_permutations, stratified_subset, train_val_split
from .transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    NORMALIZATION,
    TensorLoader,
    normalization,
    normalize_uint8,
    normalized_images,
    random_crop_flip,
)

__all__ = [
    "CIFAR10_CLASSES", "CIFAR100_CLASSES", "CIFAR_MD5", "CIFAR_URLS", "DATASETS", "SPLITS",
    "ChecksumError", "CifarSource", "CorruptArchiveError", "DataNotFoundError",
    "cache_dir", "candidate_roots", "download_cifar", "find_cifar", "load_cifar", "num_classes",
    "class_permutations", "stratified_subset", "train_val_split",
    "CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD", "NORMALIZATION",
    "TensorLoader", "normalization", "normalize_uint8", "normalized_images", "random_crop_flip",
]
