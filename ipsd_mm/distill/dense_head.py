"""The adapters of mmdet's one-stage detectors (RetinaNet, FCOS, ATSS, GFL; RTMDet): the
classification maps of the training forward, pooled inside each ground-truth box
(``box_means``)."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import (ATSSHead, FCOSHead, GFLHead, RetinaHead, RTMDetHead,
                                      RTMDetSepBNHead)
from mmdet.models.detectors import SingleStageDetector
from mmdet.utils import reduce_mean
from torch import Tensor, nn

from .adapter import register_adapter, supported
from .detector import InstanceAdapter
from .loss import PairedDistillLoss, zero_like


@register_adapter
class DenseHeadAdapter(InstanceAdapter):
    """mmdet single-stage detectors with a dense head (RetinaNet, FCOS, ATSS, GFL): the
    classification maps of the training forward, averaged over the anchors of a location,
    pooled inside each ground-truth box on every level (summed-area tables), then averaged
    across levels. Sigmoid heads (``use_sigmoid_cls``) distil with the per-class Bernoulli KL,
    softmax heads with the softmax KL. Normalised by the head's own normaliser (its positives)."""
    HEADS = (RetinaHead, FCOSHead, ATSSHead, GFLHead)
    supports = 'SingleStageDetector with a RetinaHead, FCOSHead, ATSSHead or GFLHead'

    def __init__(self, model: nn.Module, loss: PairedDistillLoss,
                 num_classes: Optional[int] = None) -> None:
        head = getattr(model, 'bbox_head', None)
        # Subclasses may change what forward returns (TOOD's scores are probabilities): only
        # the listed heads themselves are known to return logits.
        if type(head) not in self.HEADS:
            raise TypeError(f'IPSDHook: the dense head {type(head).__name__} is not supported '
                            "(its classification output must be logits the adapter knows how "
                            f'to normalise). Supported: {supported()}')
        self.sigmoid = bool(head.use_sigmoid_cls)
        super().__init__(model, loss, num_classes)

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        # MaskFormer is a SingleStageDetector with a panoptic_head instead (queries.py).
        return isinstance(model, SingleStageDetector) and hasattr(model, 'bbox_head')

    def cls_head(self) -> nn.Module:
        return self.model.bbox_head

    def modules(self) -> Dict[str, nn.Module]:
        return {'head': self.model.bbox_head, 'loss_cls': self.model.bbox_head.loss_cls}

    def zero(self) -> Tensor:
        return zero_like(*self.recorder.get('head')[0])

    def box_logits(self, boxes: Tensor, samples: Tensor) -> Tensor:
        head = self.model.bbox_head
        cls_scores = self.recorder.get('head')[0]
        pooled = []
        for level, stride in zip(cls_scores, head.prior_generator.strides):
            n, channels, h, w = level.shape
            maps = level.float().view(n, channels // head.cls_out_channels,
                                      head.cls_out_channels, h, w).mean(1)
            pooled.append(box_means(maps, boxes, samples, stride))
        return torch.stack(pooled).mean(0)


@register_adapter
class RTMDetAdapter(DenseHeadAdapter):
    """RTMDet's heads: sigmoid classification maps as for GFL (Bernoulli KL), but the quality
    focal loss is called with ``avg_factor=1.0`` on each level and the level losses are then
    divided by the batch's quality-weighted positives: the sum of the assign metrics
    (``loss_by_feat_single``'s third output), averaged over ranks and at least 1. The term
    takes that normaliser, from the per-level outputs of the forward that ran."""
    HEADS = (RTMDetHead, RTMDetSepBNHead)
    supports = 'RTMDet with an RTMDetHead or RTMDetSepBNHead'

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        return super().accepts(model) and type(getattr(model, 'bbox_head', None)) in cls.HEADS

    def methods(self) -> Dict[str, Tuple[object, str]]:
        return {'level_losses': (self.model.bbox_head, 'loss_by_feat_single')}

    def modules(self) -> Dict[str, nn.Module]:
        return {'head': self.model.bbox_head}

    def normaliser(self) -> Tuple[Tensor, float]:
        # The same reduction as RTMDetHead.loss_by_feat (one scalar all-reduce under DDP, on
        # every rank each step), kept on the device.
        metrics = sum(call.output[2] for call in self.recorder.all('level_losses'))
        norm = reduce_mean(metrics.detach().float()).clamp(min=1)
        return norm, float(getattr(self.model.bbox_head.loss_cls, 'loss_weight', 1.0))


def box_means(maps: Tensor, boxes: Tensor, samples: Tensor, stride) -> Tensor:
    """Mean of (B, C, h, w) ``maps`` over the locations inside each of the (N, 4) ``boxes``
    (at least the one holding its centre), box k in input pixels of image ``samples[k]``: all
    boxes of the batch at once, from a summed-area table, as (N, C)."""
    sy, sx = (stride, stride) if isinstance(stride, (int, float)) else (stride[1], stride[0])
    n, c, h, w = maps.shape
    table = F.pad(maps.cumsum(2).cumsum(3), (1, 0, 1, 0))  # (B, C, h + 1, w + 1)
    bx = boxes.float()
    x0 = (bx[:, 0] / sx).floor().clamp(0, w - 1).long()
    y0 = (bx[:, 1] / sy).floor().clamp(0, h - 1).long()
    x1 = torch.maximum((bx[:, 2] / sx).ceil().clamp(max=w).long(), x0 + 1)
    y1 = torch.maximum((bx[:, 3] / sy).ceil().clamp(max=h).long(), y0 + 1)
    corner = (lambda y, x: table[samples, :, y, x])  # (N, C)
    sums = corner(y1, x1) - corner(y0, x1) - corner(y1, x0) + corner(y0, x0)
    return sums / ((y1 - y0) * (x1 - x0)).float()[:, None]
