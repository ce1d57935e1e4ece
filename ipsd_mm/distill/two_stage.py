"""The adapter of mmdet's two-stage detectors (Faster/Mask R-CNN): the RoI head's classifier run
on the ground-truth boxes, from the neck features of the same forward."""
from typing import Dict, Optional

import torch

from mmdet.models.detectors import TwoStageDetector
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from torch import Tensor, nn

from .adapter import register_adapter, supported
from .detector import InstanceAdapter
from .loss import PairedDistillLoss, zero_like


@register_adapter
class TwoStageAdapter(InstanceAdapter):
    """mmdet ``TwoStageDetector`` with a ``StandardRoIHead`` (Faster/Mask R-CNN): the neck
    features of the training forward, then the RoI head's box classifier on the ground-truth
    boxes; softmax logits including the background class. Normalised by the sampled RoIs the
    classifier's cross-entropy averages over."""
    supports = ('TwoStageDetector with a StandardRoIHead and a ConvFC box head (Faster R-CNN, '
                'Mask R-CNN)')

    def __init__(self, model: nn.Module, loss: PairedDistillLoss,
                 num_classes: Optional[int] = None) -> None:
        roi_head = getattr(model, 'roi_head', None)
        if type(roi_head) is not StandardRoIHead or not isinstance(
                getattr(roi_head, 'bbox_head', None), ConvFCBBoxHead):
            raise TypeError(f'IPSDHook: the two-stage detector {type(model).__name__} has a '
                            f'{type(roi_head).__name__} with a '
                            f'{type(getattr(roi_head, "bbox_head", None)).__name__}; only a '
                            'StandardRoIHead with a ConvFC box head (Shared2FCBBoxHead) is '
                            f'supported. Supported: {supported()}')
        if getattr(roi_head.bbox_head, 'custom_cls_channels', False) or getattr(
                roi_head.bbox_head.loss_cls, 'use_sigmoid', False):
            raise TypeError('IPSDHook: the RoI box head classifies with a sigmoid or custom '
                            'activation; only the softmax cross-entropy classifier is supported')
        super().__init__(model, loss, num_classes)

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        return isinstance(model, TwoStageDetector)

    def cls_head(self) -> nn.Module:
        return self.model.roi_head.bbox_head

    def modules(self) -> Dict[str, nn.Module]:
        return {'feats': self.model.neck if self.model.with_neck else self.model.backbone,
                'loss_cls': self.cls_head().loss_cls}

    def zero(self) -> Tensor:
        return zero_like(*self.recorder.get('feats'))

    def box_logits(self, boxes: Tensor, samples: Tensor) -> Tensor:
        feats = self.recorder.get('feats')
        roi_head = self.model.roi_head
        extractor, head = roi_head.bbox_roi_extractor, roi_head.bbox_head
        boxes = boxes.to(feats[0].dtype)
        rois = torch.cat([samples[:, None].to(boxes.dtype), boxes], 1)  # as bbox2roi makes
        roi_feats = extractor(feats[:extractor.num_inputs], rois)
        if roi_head.with_shared_head:
            roi_feats = roi_head.shared_head(roi_feats)
        return head(roi_feats)[0]
