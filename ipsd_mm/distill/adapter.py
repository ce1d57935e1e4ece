"""``Adapter``: what the distillation needs from one model family, and how the hook finds the
adapter of a model.

An adapter records (``recorder.py``) what the family's training forward computes and turns it
into the term of a batch, normalised like the family's classification loss (``docs/method.md``):
a distilled pixel or instance weighs what one element of that loss weighs. The adapters live one
family a file: ``segmentor.py`` (mmseg), ``two_stage.py`` and ``dense_head.py`` (mmdet, on
``detector.py``). Each registers itself with :func:`register_adapter` when its library's side
is imported (:mod:`ipsd_mm.seg`, :mod:`ipsd_mm.det`), so this module imports neither library.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Type, Union

import torch
from torch import Tensor, nn

from .loss import PairedDistillLoss
from .recorder import Recorder


class BatchTerms(NamedTuple):
    """What an adapter returns for a batch: the loss terms (``loss_ipsd``…, before
    ``loss_weight``) and the counts logged beside them (``ipsd_pairs``…; tensors or host
    numbers, never read from the device)."""
    losses: Dict[str, Tensor]
    stats: Dict[str, Union[Tensor, int, float]]


class Adapter:
    """Records what a model family's training forward computes and turns it into the
    distillation terms of a batch.

    Subclasses set ``library`` and ``supports`` (what the refusal message lists), decide with
    :meth:`accepts` which models are theirs, and implement :meth:`modules` and :meth:`terms`.
    """
    library: str = ''
    supports: str = ''

    def __init__(self, model: nn.Module, loss: PairedDistillLoss) -> None:
        self.model, self.loss = model, loss
        self.recorder = Recorder(self.modules(), self.kwargs_of(), self.methods())

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        raise NotImplementedError

    @classmethod
    def build(cls, model: nn.Module, loss: PairedDistillLoss, mode: str, use_aux: bool,
              num_classes: Optional[int]) -> 'Adapter':
        raise NotImplementedError

    def modules(self) -> Dict[str, nn.Module]:
        """The modules whose calls are recorded, by name."""
        raise NotImplementedError

    def kwargs_of(self) -> Sequence[str]:
        """The recorded modules whose keyword arguments are kept instead of their output."""
        return ()

    def methods(self) -> Dict[str, Tuple[object, str]]:
        """Methods whose return values are recorded, by name: ``(owner, method name)``."""
        return {}

    def recording(self):
        return self.recorder.recording()

    def sources(self) -> str:
        """Where the recorded logits come from: the recorded modules' names in the model."""
        names = {module: name for name, module in self.model.named_modules()}
        return ', '.join(names.get(m, type(m).__name__) or type(m).__name__
                         for m in self.modules().values())

    def terms(self, data_samples: Sequence) -> BatchTerms:
        raise NotImplementedError

    def remove(self) -> None:
        self.recorder.remove()


ADAPTERS: List[Type[Adapter]] = []


def register_adapter(cls: Type[Adapter]) -> Type[Adapter]:
    """Class decorator: ``cls`` serves the models its ``accepts`` takes. A subclass of a
    registered adapter is the more specific one, so it is asked first."""
    if cls not in ADAPTERS:
        bases = [n for n, other in enumerate(ADAPTERS) if issubclass(cls, other)]
        ADAPTERS.insert(bases[0] if bases else len(ADAPTERS), cls)
    return cls


def supported() -> str:
    """The model families the imported sides support, for refusal messages."""
    return '; '.join(f'{cls.library} {cls.supports}' for cls in ADAPTERS) or 'none imported'


def build_adapter(model: nn.Module, loss: PairedDistillLoss, mode: str = 'region',
                  use_aux: bool = False, num_classes: Optional[int] = None) -> Adapter:
    """The adapter for ``model``'s family; a clear error for the rest. ``num_classes``: the
    train dataset's, checked against a detector's classifier."""
    for cls in ADAPTERS:
        if cls.accepts(model):
            return cls.build(model, loss, mode, use_aux, num_classes)
    library = type(model).__module__.split('.')[0]
    side = {'mmdet': 'det', 'mmseg': 'seg'}.get(library)
    if side and not any(cls.library == library for cls in ADAPTERS):
        raise TypeError(f'IPSDHook: {type(model).__name__} is an {library} model but the '
                        f"{library} side of ipsd_mm is not imported: set custom_imports=dict("
                        f"imports=['ipsd_mm.{side}'], allow_failed_imports=False)")
    heads = [f'{name} {type(getattr(model, name)).__name__}' for name in HEAD_ATTRIBUTES
             if getattr(model, name, None) is not None]
    described = type(model).__name__ + (f' with {", ".join(heads)}' if heads else '')
    raise TypeError(f'IPSDHook does not support {described}. Supported: {supported()}')


#: where OpenMMLab models keep the heads that say what a model is, for refusal messages
HEAD_ATTRIBUTES = ('decode_head', 'bbox_head', 'roi_head', 'panoptic_head')


def refuse_pixel_options(mode: str, use_aux: bool, family: str) -> None:
    """``mode='pixel'`` and ``use_aux=True`` distil heads of pixel logits, which ``family``
    (an adapter's models) does not have: a clear error naming the option."""
    if mode != 'region':
        raise ValueError(f"IPSDHook(mode='{mode}') distils pixel logits; {family} distil per "
                         "instance or class: use mode='region'")
    if use_aux:
        raise ValueError(f'IPSDHook(use_aux=True) distils auxiliary heads of pixel logits; '
                         f'{family} have none: use use_aux=False')


def check_classes(largest: Union[int, Tensor], num_logits: int, what: str, fix: str,
                  smallest: Union[int, Tensor] = 0) -> None:
    """The pair metadata names no class beyond the logits and none below 0, else a clear
    error."""
    if int(smallest) < 0:
        raise ValueError(f'IPSDHook: a paired instance has the negative label {int(smallest)}; '
                         'labels must be class ids 0..num_classes-1: fix or filter these '
                         'annotations (mark an instance to leave out with gt_ignore_flags)')
    if int(largest) >= num_logits:
        raise ValueError(f'IPSDHook: the pair metadata names class {int(largest)} but '
                         f'{what} has {num_logits} class logits; {fix}')


def count(value: int, like: Tensor) -> Tensor:
    """A count as a long scalar on ``like``'s device, so every branch returns one type."""
    return torch.full((), value, dtype=torch.long, device=like.device)
