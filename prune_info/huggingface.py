"""HuggingFace ``transformers`` classifiers as a model zoo: ``hf:ViTForImageClassification``.

A model is built from its configuration alone (``ViTConfig(**kwargs)`` then the class), so nothing
is downloaded: its weights come from the checkpoint, as for every other zoo. The model returned
is of a subclass of the named class whose ``forward`` gives the tensor of logits (HuggingFace's
return an output object), so that every step of prune-info — torch-pruning's tracing, the
pruned == masked check, ONNX export — sees a plain classifier; its parameters and their names
are the class's own, so a ``state_dict`` saved from the original class loads as it is.

Recognised are the image classifiers (``...ForImageClassification``), whose input is a batch of
images ``[B, C, H, W]``. Text classifiers (``...ForSequenceClassification``) take token ids,
which the data seam does not give (it gives float images), so they are refused with that reason.
The ``transformers`` package is an optional extra (``pip install -e '.[hf]'``; ``make install``
installs it).

Their attention, in the layout of transformers 5 (``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``
with ``num_attention_heads`` and ``head_dim``), has its heads as units: see
:func:`prune_info.nn.attention_heads`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
from typing import Any

from torch import nn

from prune_info.errors import PruneInfoError

#: Prefix of a factory spec that names a HuggingFace classifier (``hf:ViTForImageClassification``).
HF_PREFIX = "hf:"

#: The class-name endings of the models this zoo builds.
_IMAGE, _TEXT = "ForImageClassification", "ForSequenceClassification"


def _transformers() -> Any:
    try:
        return importlib.import_module("transformers")
    except ImportError as exc:
        raise PruneInfoError(
            f"HuggingFace models need the transformers package ({exc}); install it with "
            "pip install -e '.[hf]' (or make install)") from None


def _model_class(module: Any, name: str) -> type | None:
    """The model class ``transformers`` calls ``name`` (not an ``Auto...`` dispatcher)."""
    found = getattr(module, name, None)
    base = getattr(module, "PreTrainedModel", None)
    if isinstance(found, type) and isinstance(base, type) and issubclass(found, base):
        return found
    return None


def is_hf_class(name: str) -> bool:
    """Whether ``transformers`` has an image classifier called ``name`` (False without the
    package): the test of a known zoo, which imports nothing else."""
    try:
        module = importlib.import_module("transformers")
    except ImportError:
        return False
    return name.endswith(_IMAGE) and _model_class(module, name) is not None


def _check_config_kwargs(name: str, config_class: type, kwargs: dict[str, Any]) -> None:
    """Refuse a configuration key the class does not know: a config keeps any keyword it is
    given as an attribute, so a misspelt one would be silently ignored."""
    known = set(config_class().to_dict()) | {"num_labels"}
    for cls in config_class.__mro__:
        init = cls.__dict__.get("__init__")
        if init is not None:
            known |= set(inspect.signature(init).parameters) - {"self", "kwargs"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=3)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise PruneInfoError(
            f"`model_kwargs` {', '.join(unknown)}: not a setting of {config_class.__name__}, "
            f"the configuration of {name}{hint}")


@functools.cache
def _returning_logits(cls: Any) -> type:
    """The subclass of ``cls`` whose ``forward(inputs)`` returns the tensor of logits."""

    def forward(self: nn.Module, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return cls.forward(self, inputs, *args, **kwargs).logits

    return type(cls.__name__, (cls,), {"forward": forward, "__module__": __name__,
                                       "__qualname__": cls.__qualname__})


def hf_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the HuggingFace classifier ``name`` (e.g. ``ViTForImageClassification``) from a
    configuration of ``kwargs`` (``image_size=32, patch_size=4, num_labels=10, ...``), without
    weights and without downloading anything; its ``forward`` returns the logits.

    Raises
    ------
    PruneInfoError
        ``transformers`` is not installed; the class is not an image classifier it has (a text
        classifier is refused with the reason); a key of ``kwargs`` is not a setting of the
        class's configuration.

    Examples
    --------
    >>> import torch
    >>> model = hf_model("ViTForImageClassification", image_size=16, patch_size=8,
    ...                  hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...                  intermediate_size=16, num_labels=3)
    >>> model(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 3])
    """
    transformers = _transformers()
    cls = _model_class(transformers, name)
    if name.endswith(_TEXT) and cls is not None:
        raise PruneInfoError(
            f"hf:{name} classifies token ids, and prune-info's data are images (float tensors "
            f"[B, C, H, W]); only image classifiers (hf:...{_IMAGE}) are supported")
    if not name.endswith(_IMAGE) or cls is None:
        known = [n for n in dir(transformers)
                 if n.endswith(_IMAGE) and _model_class(transformers, n) is not None]
        close = difflib.get_close_matches(name, known, n=4, cutoff=0.5)
        hint = f"; close names: {', '.join(close)}" if close else ""
        raise PruneInfoError(f"transformers has no image classifier {name!r}{hint}")
    config_class: type = cls.config_class  # type: ignore[attr-defined]
    _check_config_kwargs(name, config_class, kwargs)
    return _returning_logits(cls)(config_class(**kwargs))
