"""Data: containers, the bring-your-own contracts and the built-in datasets.

``load_dataset(name_or_path, seed=0, **options)`` loads a built-in dataset (see ``DATASETS``) or a
``.npz`` / ``.las`` file.
"""
from .dataset import DataError, DatasetBundle, ModalitySpec, MultimodalData, load_npz, split_indices
from .las import load_las, read_las
from .normalize import Normalizer
from .scoring import load_for_scoring
from .registry import DATASETS, DatasetInfo, dataset_names, load_dataset

__all__ = [
    "DataError",
    "DatasetBundle",
    "ModalitySpec",
    "MultimodalData",
    "load_npz",
    "split_indices",
    "load_las",
    "Normalizer",
    "load_for_scoring",
    "read_las",
    "DATASETS",
    "DatasetInfo",
    "dataset_names",
    "load_dataset",
]
