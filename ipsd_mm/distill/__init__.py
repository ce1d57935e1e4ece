"""The distillation side: the paired KL (``loss.py``), the recorder of a training forward
(``recorder.py``), the pairs of a batch (``pairs.py``), the adapter interface and lookup
(``adapter.py``), one adapter per model family (``segmentor.py``, ``mask_classification.py``;
``two_stage.py``, ``dense_head.py`` and ``queries.py`` on ``detector.py``; the query-based ones read
the loss's matching through ``matching.py``) and the hook that adds the term to training
(``hook.py``).
This package imports neither mmdet nor mmseg: the adapters of each library are imported by
:mod:`ipsd_mm.seg` and :mod:`ipsd_mm.det`."""
from .adapter import Adapter, BatchTerms, build_adapter, register_adapter
from .hook import IPSDHook
from .loss import PairedDistillLoss, PairSum, paired_kl

__all__ = [
    'Adapter', 'BatchTerms', 'IPSDHook', 'PairSum', 'PairedDistillLoss', 'build_adapter',
    'paired_kl', 'register_adapter'
]
