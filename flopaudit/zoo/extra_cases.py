"""Real-model families beyond torchvision classification and the hard cases.

* torchvision detection, segmentation, video, optical flow and quantization-
  ready models (:mod:`flopaudit.zoo.torchvision_extra`), always registered;
* timm models (:mod:`flopaudit.zoo.timm_models`), registered when ``timm``
  is installed;
* Hugging Face transformers built from configs
  (:mod:`flopaudit.zoo.hf_models`), registered when ``transformers`` is
  installed.

Building the registry never imports timm or transformers (both are slow to
import): availability is checked with :func:`~flopaudit.zoo.optional.available`
and the builders import them. None of these cases is in the default zoo;
select them by tag (``--tags timm``, ``transformers``, ``detection``...).
"""

from __future__ import annotations

from flopaudit.zoo import torchvision_extra
from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.optional import available


def cases() -> list[ModelCase]:
    """torchvision extras, plus timm and transformers cases where installed."""
    out = torchvision_extra.cases()
    if available("timm"):
        from flopaudit.zoo import timm_models

        out += timm_models.cases()
    if available("transformers"):
        from flopaudit.zoo import hf_models

        out += hf_models.cases()
    return out
