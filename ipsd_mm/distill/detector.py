"""What the detector adapters share (``two_stage.py``, ``dense_head.py``): the matched
instances of each pair, their class logits, the paired KL, divided by the normaliser the
classification loss was given in the same forward."""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmdet.structures.bbox import get_box_tensor
from torch import Tensor, nn

from ..pair_meta import INSTANCE_PAIRS
from .adapter import Adapter, BatchTerms, check_classes, refuse_pixel_options, supported
from .loss import PairedDistillLoss
from .pairs import find_pairs, to_device


class InstanceAdapter(Adapter):
    """Shared by the detector families: matched instances -> class logits -> paired KL, divided
    by the normaliser the classification loss was given in the same forward (its
    ``avg_factor``) and scaled by that loss's ``loss_weight``."""
    library = 'mmdet'
    sigmoid = False

    def __init__(self, model: nn.Module, loss: PairedDistillLoss,
                 num_classes: Optional[int] = None) -> None:
        self.model = model
        head = self.cls_head()
        if num_classes is not None and head.num_classes < num_classes:
            raise ValueError(f'IPSDHook: {type(head).__name__} has num_classes='
                             f'{head.num_classes} but the train dataset has {num_classes} '
                             'classes; a class-agnostic head (e.g. an RPN) cannot distil classes')
        if not hasattr(head, 'loss_cls'):
            raise TypeError(f'IPSDHook: {type(head).__name__} has no loss_cls to take the '
                            f'normaliser from; not supported. Supported: {supported()}')
        super().__init__(model, loss)

    @classmethod
    def build(cls, model: nn.Module, loss: PairedDistillLoss, mode: str, use_aux: bool,
              num_classes: Optional[int]) -> 'InstanceAdapter':
        refuse_pixel_options(mode, use_aux, 'detectors')
        return cls(model, loss, num_classes)

    def cls_head(self) -> nn.Module:
        """The head whose classifier is distilled and whose ``loss_cls`` gives the normaliser."""
        raise NotImplementedError

    def kwargs_of(self) -> Sequence[str]:
        return ('loss_cls', )

    def normaliser(self) -> Tuple[Union[float, Tensor], float]:
        """(the ``avg_factor`` the classification loss got in this forward, its weight)."""
        factors = {float(kw.get('avg_factor')) if kw.get('avg_factor') is not None else None
                   for kw in self.recorder.all('loss_cls')}
        if None in factors or len(factors) != 1:
            raise RuntimeError(f'IPSDHook: {type(self.cls_head()).__name__} called its loss_cls '
                               f'with avg_factor {sorted(map(str, factors))}; one number is '
                               'needed as the normaliser, so this head is not supported')
        weight = float(getattr(self.cls_head().loss_cls, 'loss_weight', 1.0))
        return max(factors.pop(), 1.0), weight

    def terms(self, data_samples: Sequence) -> BatchTerms:
        # First, on every step of every rank: a normaliser may be a collective (RTMDet's).
        norm, weight = self.normaliser()
        pairs = find_pairs(data_samples)
        matches = [(a, i, b, j) for a, b in pairs for i, j in data_samples[a].get(INSTANCE_PAIRS)]
        empty = sum(not data_samples[a].get(INSTANCE_PAIRS) for a, _ in pairs)
        stats = dict(ipsd_pairs=len(pairs), ipsd_instances=len(matches), ipsd_empty_pairs=empty,
                     ipsd_gated=0)
        if not matches:
            return BatchTerms({'loss_ipsd': self.zero()}, stats)
        # Each instance that takes part gets one row of logits, sample by sample; rows and
        # classes are gathered from the batch's boxes and labels at once (host indices).
        keys = sorted({(a, i) for a, i, _, _ in matches} | {(b, j) for _, _, b, j in matches})
        row = {key: n for n, key in enumerate(keys)}
        starts = np.cumsum([0] + [len(s.gt_instances) for s in data_samples])
        all_boxes = torch.cat([get_box_tensor(s.gt_instances.bboxes) for s in data_samples])
        all_labels = torch.cat([s.gt_instances.labels for s in data_samples])
        device = all_boxes.device
        picked, samples = to_device([[starts[k] + i for k, i in keys], [k for k, _ in keys]],
                                    device)
        labelled, rows_a, rows_b = to_device(
            [[starts[a] + i for a, i, _, _ in matches], [row[(a, i)] for a, i, _, _ in matches],
             [row[(b, j)] for _, _, b, j in matches]], device)
        boxes, classes = all_boxes[picked], all_labels[labelled]
        num = self.cls_head().num_classes
        # All checks in one read from the device.
        finite, largest, smallest = torch.stack([torch.isfinite(boxes).all().long(),
                                                 classes.max().long(),
                                                 classes.min().long()]).tolist()
        if not finite:
            bad = int(samples[~torch.isfinite(boxes).all(1)][0])
            raise ValueError(f'IPSDHook: data sample {bad} holds non-finite gt boxes (NaN or '
                             'inf); fix or filter these annotations')
        check_classes(largest, num, type(self.cls_head()).__name__,
                      "the dataset's classes must match the head's num_classes", smallest)
        indices = torch.as_tensor([i for _, i in keys], device=device)
        logits, found = self.instance_logits(boxes, samples, indices)
        valid = None if found is None else found[rows_a] & found[rows_b]
        result = self.loss.pair_sum(logits[rows_a], logits[rows_b], classes,
                                    weights=self.class_weights(classes), sigmoid=self.sigmoid,
                                    valid=valid)
        stats.update(ipsd_gated=result.gated,
                     ipsd_kl_per_instance=result.total.detach() / result.count.clamp(min=1),
                     ipsd_normaliser=norm)
        return BatchTerms({'loss_ipsd': result.total * (weight / norm)}, stats)

    def zero(self) -> Tensor:
        """A zero term attached to the graph of this forward."""
        raise NotImplementedError

    def instance_logits(self, boxes: Tensor, samples: Tensor,
                        indices: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """Class logits of N ground-truth instances, instance ``indices[k]`` of image
        ``samples[k]`` with box ``boxes[k]``: one row each, and which rows hold logits (None:
        all). The box-pooling families read the boxes (:meth:`box_logits`); the query-matching
        ones the query matched to the instance."""
        return self.box_logits(boxes, samples), None

    def box_logits(self, boxes: Tensor, samples: Tensor) -> Tensor:
        """Class logits of the (N, 4) ground-truth ``boxes``, box k of image ``samples[k]``:
        one row per box."""
        raise NotImplementedError

    def class_weights(self, classes: Tensor) -> Optional[Tensor]:
        """Each pair's weight from the classification loss's ``class_weight`` (None: 1)."""
        return None
