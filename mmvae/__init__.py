"""mmvae: multimodal variational autoencoders with PoE, MoE and MoPoE fusion, trained with the
ELBO, IWAE(K), DReG or STL.

Layout, in the order data flows: ``data`` -> ``networks`` -> ``fusion`` -> ``objectives`` ->
``training`` -> ``evaluation`` / ``diagnostics``; ``checkpoint`` saves and loads models and
``cli`` is the command line.
"""
from .checkpoint import Checkpoint, CheckpointError, data_provenance, load_checkpoint, save_checkpoint
from .data import DataError, DatasetBundle, ModalitySpec, MultimodalData
from .fusion import FUSIONS, FusionError, Posterior
from .model import ModalityConfig, ModelConfig, MultimodalVAE, build_model, config_for_specs
from .objectives import BOUNDS, ESTIMATORS, bounds, log_weights, objective
from .training import History, TrainConfig, Trainer, fit, resolve_device

__version__ = "0.1.0"

__all__ = [
    "BOUNDS", "Checkpoint", "CheckpointError", "DataError", "DatasetBundle", "ESTIMATORS", "FUSIONS",
    "FusionError", "History", "ModalityConfig", "ModalitySpec", "ModelConfig", "MultimodalData",
    "MultimodalVAE", "Posterior", "TrainConfig", "Trainer", "bounds", "build_model", "config_for_specs",
    "data_provenance", "fit", "load_checkpoint", "log_weights", "objective", "resolve_device", "save_checkpoint",
]
