"""Reading a query-based head's Hungarian matching from the forward that already ran.

DETR-like detectors and MaskFormer-like segmentors match queries to ground-truth instances once
per decoder layer and image, through ``head.assigner.assign(pred_instances=..., ...)``, whose
``pred_instances.scores`` is a view of that layer's class logits. The recorder keeps every call;
:func:`last_layer_matches` keeps those on the last layer's logits (by where the view points, not
by call order), so the term reads the matching the loss used and never runs the matcher again.
"""
from typing import Sequence

import torch
from torch import Tensor


class Matches:
    """The batch's matching on the last decoder layer, image by image stacked."""

    def __init__(self, scores: Tensor, gt_inds: Tensor, classes: Tensor) -> None:
        self.scores = scores  # (B, Q, C) the logits the assigner matched on, with their gradient
        self.gt_inds = gt_inds  # (B, Q) 1 + the ground-truth instance of each query; 0: none
        self.classes = classes  # (B, Q) the class each query is matched to; -1: none

    def weighted_count(self, class_weight: Sequence[float]) -> Tensor:
        """Every query counted at its target's ``class_weight`` (the last entry: no-object), as
        MaskFormer-like heads normalise their classification loss."""
        weight = self.scores.new_tensor(class_weight, dtype=torch.float32)
        return weight[torch.where(self.classes >= 0, self.classes, len(weight) - 1)].sum()


def last_layer_matches(calls: Sequence, last: Tensor, owner: str) -> Matches:
    """The :class:`Matches` on ``last``. ``calls`` are the recorded ``assign`` calls; ``last``
    is the last decoder layer's (B, Q, C) logits as the head's forward returned them."""
    storage = last.untyped_storage().data_ptr()
    step = last.stride(0) * last.element_size()
    found = {}
    for call in calls:
        scores = call.kwargs['pred_instances'].scores
        offset = scores.data_ptr() - last.data_ptr()
        if scores.untyped_storage().data_ptr() == storage and 0 <= offset < step * len(last):
            found[offset // step] = (scores, call.output.gt_inds,
                                     call.kwargs['gt_instances'].labels)
    if sorted(found) != list(range(len(last))):
        raise RuntimeError(f'IPSDHook: {owner} matched the last decoder layer of images '
                           f'{sorted(found)} of {len(last)}; the term needs each image\'s '
                           'matching, so this head is not supported')
    scores, gt_inds, labels = zip(*(found[b] for b in range(len(last))))
    classes = [torch.where(inds > 0, gt[(inds - 1).clamp(min=0)] if len(gt) else inds, -1)
               for inds, gt in zip(gt_inds, labels)]
    return Matches(torch.stack(scores), torch.stack(gt_inds), torch.stack(classes))
