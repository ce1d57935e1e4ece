"""The adapter of mmseg's Mask2Former (semantic segmentation by mask classification): one
ground-truth instance per class an image holds, each matched to one query; the term of a pair
and a class both members hold is between the class logits (softmax with no-object) of the two
queries matched to that class on the last decoder layer, read from the loss's own matching
(``matching.py``)."""
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..pair_meta import CLASSES
from .adapter import (Adapter, BatchTerms, check_classes, count, refuse_pixel_options,
                      register_adapter)
from .loss import PairedDistillLoss, zero_like
from .matching import Matches, last_layer_matches
from .pairs import find_pairs, to_device


@register_adapter
class MaskClassificationAdapter(Adapter):
    """mmseg ``EncoderDecoder`` with a ``Mask2FormerHead``. Per pair and per class both members
    hold (the pair metadata, as for the other segmentors), the query matched to the class in
    each member; a class left unmatched in either adds nothing. The sum is divided by the
    classification loss's own ``avg_factor``, the ``class_weight`` summed over every query of
    the last layer (no-object ones at their weight), scaled by its ``loss_weight``, each pair
    weighted by its class's ``class_weight``."""
    library = 'mmseg'
    supports = 'EncoderDecoder with a Mask2FormerHead (one matched query per class)'

    def __init__(self, model: nn.Module, loss: PairedDistillLoss) -> None:
        self.head = model.decode_head
        if not hasattr(self.head, 'assigner'):
            raise ValueError('IPSDHook: the Mask2FormerHead has no assigner (no train_cfg): '
                             'the term reads the matching of the training forward')
        super().__init__(model, loss)

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        from mmseg.models import EncoderDecoder, Mask2FormerHead  # imports mmdet: see _mmseg
        return isinstance(model, EncoderDecoder) and isinstance(model.decode_head,
                                                                Mask2FormerHead)

    @classmethod
    def build(cls, model: nn.Module, loss: PairedDistillLoss, mode: str, use_aux: bool,
              num_classes: Optional[int]) -> 'MaskClassificationAdapter':
        refuse_pixel_options(mode, use_aux, 'mask classification segmentors (Mask2Former)')
        head = model.decode_head
        if num_classes is not None and head.num_classes < num_classes:
            raise ValueError(f'IPSDHook: the decode head Mask2FormerHead has num_classes='
                             f'{head.num_classes} but the train dataset has {num_classes} '
                             'classes; set decode_head.num_classes to the dataset\'s')
        return cls(model, loss)

    def modules(self) -> Dict[str, nn.Module]:
        return {'head': self.head}

    def methods(self):
        return {'assign': (self.head.assigner, 'assign')}

    def normaliser(self, matches: Matches) -> Tuple[Tensor, float]:
        """(the ``avg_factor`` of the last layer's ``loss_cls``, its ``loss_weight``)."""
        return (matches.weighted_count(self.head.class_weight),
                float(getattr(self.head.loss_cls, 'loss_weight', 1.0)))

    def terms(self, data_samples: Sequence) -> BatchTerms:
        pairs = find_pairs(data_samples)
        rows = [(k, a, b, int(c)) for k, (a, b) in enumerate(pairs)
                for c in data_samples[a].get(CLASSES)]
        matches = last_layer_matches(self.recorder.all('assign'),
                                     self.recorder.get('head')[0][-1], 'Mask2FormerHead')
        scores, query_classes = matches.scores, matches.classes
        norm, weight = self.normaliser(matches)
        if not rows:
            return BatchTerms({'loss_ipsd': zero_like(scores)},
                              dict(ipsd_pairs=len(pairs), ipsd_regions=count(0, scores),
                                   ipsd_empty_pairs=len(pairs), ipsd_gated=count(0, scores)))
        check_classes(max(c for *_, c in rows), self.head.num_classes, 'Mask2FormerHead',
                      "set IntraClassPatchSwap's ignore_index to the decode head's "
                      'ignore_index and check num_classes')
        pair, ia, ib, cls = to_device(list(zip(*rows)), scores.device)
        in_a = query_classes[ia] == cls[:, None]  # (N, Q): the query matched to the class
        in_b = query_classes[ib] == cls[:, None]
        za = scores[ia, in_a.float().argmax(1)].float()
        zb = scores[ib, in_b.float().argmax(1)].float()
        valid = in_a.any(1) & in_b.any(1)
        class_weight = scores.new_tensor(self.head.class_weight, dtype=torch.float32)[cls]
        result = self.loss.pair_sum(za, zb, cls, weights=class_weight, valid=valid)
        found = torch.zeros(len(pairs), device=scores.device).index_add_(0, pair, valid.float())
        return BatchTerms({'loss_ipsd': result.total * weight / norm},
                          dict(ipsd_pairs=len(pairs), ipsd_regions=valid.sum(),
                               ipsd_empty_pairs=(found == 0).sum(), ipsd_gated=result.gated,
                               ipsd_kl_per_region=result.total.detach() / valid.sum().clamp(
                                   min=1), ipsd_normaliser=norm))
