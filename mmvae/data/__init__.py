"""Data: containers, the bring-your-own contracts and the built-in datasets."""
from .dataset import DataError, DatasetBundle, ModalitySpec, MultimodalData, load_npz, split_indices

__all__ = ["DataError", "DatasetBundle", "ModalitySpec", "MultimodalData", "load_npz", "split_indices"]
