"""Reading a query-based head's Hungarian matching from the forward that already ran.

DETR-like detectors and MaskFormer-like segmentors match queries to ground-truth instances once
per decoder layer and image, through ``head.assigner.assign(pred_instances=..., ...)``, whose
``pred_instances.scores`` is a view of that layer's class logits. The recorder keeps every call;
:func:`last_layer_matches` keeps those on the last layer's logits (by where the view points, not
by call order), so the term reads the matching the loss used and never runs the matcher again.
"""
from typing import Dict, NamedTuple, Sequence

import torch
from torch import Tensor


class Match(NamedTuple):
    """One image's matching on the last decoder layer."""
    scores: Tensor  # (Q, C) the logits the assigner matched on: a view, with its gradient
    gt_inds: Tensor  # (Q,) 1 + the ground-truth instance a query is matched to; 0: none
    gt_labels: Tensor  # (G,) the class of each ground-truth instance, as the head saw them

    def query_classes(self) -> Tensor:
        """(Q,) the class each query is matched to; -1 for none."""
        labels = self.gt_labels[(self.gt_inds - 1).clamp(min=0)] if len(self.gt_labels) \
            else torch.zeros_like(self.gt_inds)
        return torch.where(self.gt_inds > 0, labels, torch.full_like(labels, -1))


def last_layer_matches(calls: Sequence, last: Tensor, owner: str) -> Dict[int, Match]:
    """Image ``b``'s :class:`Match` on ``last[b]``. ``calls`` are the recorded ``assign``
    calls; ``last`` is the last decoder layer's (B, Q, C) logits as the head's forward
    returned them."""
    storage = last.untyped_storage().data_ptr()
    step = last.stride(0) * last.element_size()
    found: Dict[int, Match] = {}
    for call in calls:
        scores = call.kwargs['pred_instances'].scores
        offset = scores.data_ptr() - last.data_ptr()
        if scores.untyped_storage().data_ptr() == storage and 0 <= offset < step * len(last):
            found[offset // step] = Match(scores, call.output.gt_inds,
                                          call.kwargs['gt_instances'].labels)
    if sorted(found) != list(range(len(last))):
        raise RuntimeError(f'IPSDHook: {owner} matched the last decoder layer of images '
                           f'{sorted(found)} of {len(last)}; the term needs each image\'s '
                           'matching, so this head is not supported')
    return found
