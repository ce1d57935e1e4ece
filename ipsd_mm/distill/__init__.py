"""The distillation side: paired KL (``loss``), logits per model family (``adapters``) and the
hook that adds the term to training (``hook``)."""
from .adapters import build_adapter
from .hook import IPSDHook
from .loss import PairedDistillLoss, paired_kl

__all__ = ['IPSDHook', 'PairedDistillLoss', 'build_adapter', 'paired_kl']
