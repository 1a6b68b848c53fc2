"""Import multivae beside the CPU torch build.

multivae pulls in torchvision, whose compiled ops may not match the
installed torch; torchvision then fails at import with
"operator torchvision::nms does not exist" when it registers a fake
kernel for an operator whose schema was never defined.  torchvision
registers such fake kernels unconditionally only for ``nms`` and ``qnms``
(the others are guarded by ``extension._has_ops()``), so defining those two
schemas first lets the import go through (the ops are never called here).
Benchmark-only: nothing in the mmvae package depends on this.
"""
import importlib

_NMS_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_OPS = ("torchvision::nms", "torchvision::qnms")


def _register_nms_schema():
    import torch

    for qualname in _OPS:
        try:
            torch.library.define(qualname, _NMS_SCHEMA)
        except Exception:
            # Already defined (torchvision's own ops loaded, or called twice).
            pass


def import_multivae():
    """Return the multivae module, registering torchvision::nms first."""
    _register_nms_schema()
    return importlib.import_module("multivae")
