"""The adapters of mmdet's query-based detectors: the DETR family (DETR, Deformable DETR, DINO)
and Mask2Former (instance segmentation). An instance's logits are those of the query the
Hungarian matcher gave it on the last decoder layer, read from the matching the loss already
made (``matching.py``)."""
from typing import Dict, Optional, Tuple

import torch
from mmdet.models.dense_heads import (DeformableDETRHead, DETRHead, DINOHead,
                                      Mask2FormerHead)
from mmdet.models.detectors import DetectionTransformer, MaskFormer
from mmdet.utils import reduce_mean
from torch import Tensor, nn

from .adapter import register_adapter, supported
from .detector import InstanceAdapter
from .loss import PairedDistillLoss, zero_like
from .matching import Matches, last_layer_matches


@register_adapter
class QueryAdapter(InstanceAdapter):
    """mmdet ``DetectionTransformer`` detectors with a ``DETRHead``, ``DeformableDETRHead`` or
    ``DINOHead``: an instance's logits are those of the query matched to it on the last decoder
    layer (DINO: among the matching queries, not the denoising ones); an instance left
    unmatched adds nothing. Sigmoid heads (DINO, Deformable DETR: focal loss) distil with the
    Bernoulli KL, softmax heads (DETR) with the softmax KL over the classes and no-object. The
    normaliser is the last layer's ``cls_avg_factor`` as the head computes it (matched queries,
    plus unmatched ones times ``bg_cls_weight``; averaged over ranks when
    ``sync_cls_avg_factor``; at least 1), each pair weighted by its class's ``class_weight``."""
    HEADS: tuple = (DETRHead, DeformableDETRHead, DINOHead)
    HEAD = 'bbox_head'  # where the model keeps the head
    supports = 'DetectionTransformer with a DETRHead, DeformableDETRHead or DINOHead'

    def __init__(self, model: nn.Module, loss: PairedDistillLoss,
                 num_classes: Optional[int] = None) -> None:
        head = getattr(model, self.HEAD, None)
        if type(head) not in self.HEADS:
            raise TypeError(f'IPSDHook: the query head {type(head).__name__} is not supported '
                            '(the adapter must know where its matching and its classification '
                            f'normaliser come from). Supported: {supported()}')
        if not hasattr(head, 'assigner'):
            raise ValueError(f'IPSDHook: {type(head).__name__} has no assigner (no train_cfg): '
                             'the term reads the matching of the training forward')
        self.sigmoid = bool(getattr(head.loss_cls, 'use_sigmoid', False))
        super().__init__(model, loss, num_classes)

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        return isinstance(model, DetectionTransformer)

    def cls_head(self) -> nn.Module:
        return getattr(self.model, self.HEAD)

    def modules(self) -> Dict[str, nn.Module]:
        return {'head': self.cls_head()}

    def methods(self):
        return {'assign': (self.cls_head().assigner, 'assign')}

    def zero(self) -> Tensor:
        return zero_like(self.recorder.get('head')[0][-1])

    def matches(self) -> Matches:
        """The batch's matching on the last decoder layer, read once per forward."""
        return self.recorder.derive('matches', lambda: last_layer_matches(
            self.recorder.all('assign'), self.recorder.get('head')[0][-1],
            type(self.cls_head()).__name__))

    def normaliser(self) -> Tuple[Tensor, float]:
        head = self.cls_head()
        gt_inds = self.matches().gt_inds
        factor = (gt_inds > 0).sum().float() + (gt_inds == 0).sum().float() * head.bg_cls_weight
        if head.sync_cls_avg_factor:  # the head's own reduction: one scalar all-reduce
            factor = reduce_mean(factor)
        return factor.clamp(min=1), float(getattr(head.loss_cls, 'loss_weight', 1.0))

    def instance_logits(self, boxes: Tensor, samples: Tensor,
                        indices: Tensor) -> Tuple[Tensor, Tensor]:
        matches = self.matches()
        matched = matches.gt_inds[samples] == (indices + 1)[:, None]  # (N, Q): its query
        return matches.scores[samples, matched.float().argmax(1)].float(), matched.any(1)

    def class_weights(self, classes: Tensor) -> Optional[Tensor]:
        weight = getattr(self.cls_head().loss_cls, 'class_weight', None)
        return None if weight is None else torch.as_tensor(weight, device=classes.device)[classes]


@register_adapter
class MaskFormerQueryAdapter(QueryAdapter):
    """mmdet ``MaskFormer`` detectors with a ``Mask2FormerHead`` (Mask2Former, instance
    segmentation; panoptic training data is refused by the swap, which does not move the stuff
    map): as for the DETR family, softmax with no-object; the normaliser is the last layer's
    ``loss_cls`` ``avg_factor``, ``class_weight`` summed over every query (no-object ones at
    their weight)."""
    HEADS = (Mask2FormerHead, )
    HEAD = 'panoptic_head'
    supports = 'MaskFormer with a Mask2FormerHead (Mask2Former instance segmentation)'

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        return isinstance(model, MaskFormer)

    def normaliser(self) -> Tuple[Tensor, float]:
        head = self.cls_head()
        return (self.matches().weighted_count(head.class_weight),
                float(getattr(head.loss_cls, 'loss_weight', 1.0)))
