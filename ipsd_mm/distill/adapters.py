"""Per model family, the logits the distillation needs and the normaliser of the task loss the
term joins, taken from the training forward that already runs: forward hooks record module
outputs (as MMRazor's recorders do), with no second forward of the network. Pairs are found
from the pair metadata, never from batch positions.

Each adapter returns ``loss_weight``-free terms normalised like its task's classification loss
(``docs/method.md``): a distilled pixel or instance weighs what one element of that loss weighs.
"""
from collections import defaultdict
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import ATSSHead, FCOSHead, GFLHead, RetinaHead
from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmdet.structures.bbox import bbox2roi, get_box_tensor
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.segmentors import EncoderDecoder
from torch import Tensor, nn

from ..pair_meta import ANCHOR, CLASSES, INSTANCE_PAIRS, PAIR_ID, PARTNER, ROLE
from .loss import PairedDistillLoss, zero_like

Terms = Dict[str, Tensor]

SUPPORTED = ('mmseg EncoderDecoder / CascadeEncoderDecoder whose (last) decode head classifies '
             'with conv_seg (e.g. DeepLabV3, PSPNet, FCN, UPerNet, OCRNet); mmdet '
             'TwoStageDetector with a StandardRoIHead and a ConvFC box head (Faster R-CNN, '
             'Mask R-CNN); mmdet SingleStageDetector with a RetinaHead, FCOSHead, ATSSHead or '
             'GFLHead')


def check_pair_metadata(data_samples: Sequence) -> None:
    """Every sample carries the pair metadata, else the fix in one message."""
    for pos, sample in enumerate(data_samples):
        if not hasattr(sample, 'get') or sample.get(PAIR_ID) is None or sample.get(ROLE) is None:
            raise KeyError(
                f'IPSDHook: data sample {pos} carries no {PAIR_ID}/{ROLE}: wrap the train '
                "dataset in dict(type='IntraClassPairDataset', ...) and set the train "
                "dataloader's collate_fn=dict(type='pair_collate')")


def find_pairs(data_samples: Sequence) -> List[Tuple[int, int]]:
    """Batch positions (anchor, partner) of each pair, from ``ipsd_pair_id`` / ``ipsd_role``."""
    check_pair_metadata(data_samples)
    members: Dict[int, Dict[int, int]] = defaultdict(dict)
    for pos, sample in enumerate(data_samples):
        members[int(sample.get(PAIR_ID))][int(sample.get(ROLE))] = pos
    pairs = []
    for pair_id, roles in sorted(members.items()):
        if set(roles) != {ANCHOR, PARTNER}:
            raise ValueError(f'IPSDHook: pair {pair_id} lacks a member in this batch (roles '
                             f'{sorted(roles)}); use pair_collate, which keeps pairs whole')
        pairs.append((roles[ANCHOR], roles[PARTNER]))
    return pairs


class Recorder:
    """Keeps, while recording, what each watched module returns on every call (and, for
    modules watched with ``kwargs=True``, the keyword arguments it was called with)."""

    def __init__(self, modules: Dict[str, nn.Module], with_kwargs: Sequence[str] = ()) -> None:
        self.names = list(modules)
        self.calls: Dict[str, list] = defaultdict(list)
        self.active = False
        self.handles = [
            m.register_forward_hook(self._hook(name), with_kwargs=name in with_kwargs)
            for name, m in modules.items()
        ]

    def _hook(self, name: str):
        def hook(module, *args):
            if self.active:
                self.calls[name].append(args[-2] if len(args) == 3 else args[-1])  # kwargs / out
        return hook

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Record during the block; what was recorded lives until :meth:`clear`."""
        self.calls.clear()
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def clear(self) -> None:
        self.calls.clear()  # do not keep the graph alive past the step

    def all(self, name: str) -> list:
        if not self.calls.get(name):
            raise RuntimeError(f'IPSDHook: {name} was not called during the training forward; '
                               'this model does not run the way its adapter expects')
        return self.calls[name]

    def get(self, name: str):
        """The output of a module that must run exactly once per training forward."""
        calls = self.all(name)
        if len(calls) > 1:
            raise RuntimeError(f'IPSDHook: {name} ran {len(calls)} times in one training '
                               'forward, so which output to distil is ambiguous; this model is '
                               f'not supported. Supported: {SUPPORTED}')
        return calls[0]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class Adapter:
    """Records what a model family's training forward computes and turns it into the
    distillation terms of a batch."""

    def __init__(self, model: nn.Module, loss: PairedDistillLoss) -> None:
        self.model, self.loss = model, loss
        self.recorder = Recorder(self.modules(), self.kwargs_of())

    def modules(self) -> Dict[str, nn.Module]:
        raise NotImplementedError

    def kwargs_of(self) -> Sequence[str]:
        return ()

    def recording(self):
        return self.recorder.recording()

    def terms(self, data_samples: Sequence) -> Tuple[Terms, Dict[str, float]]:
        raise NotImplementedError

    def remove(self) -> None:
        self.recorder.remove()


def _last(module):
    return module[-1] if isinstance(module, nn.ModuleList) else module


def _check_classes(largest: int, num_logits: int, what: str, fix: str) -> None:
    if largest >= num_logits:
        raise ValueError(f'IPSDHook: the pair metadata names class {largest} but '
                         f'{what} has {num_logits} class logits; {fix}')


class SegmentorAdapter(Adapter):
    """mmseg ``EncoderDecoder`` / ``CascadeEncoderDecoder``: the decode head's logits (the last
    head of a cascade), and optionally the auxiliary heads'. Per pair and per class both members
    hold, ``region`` distils the region-mean logits (each region weighted by the student's pixel
    count), ``pixel`` the teacher's region distribution into every student pixel. The sum is
    divided by the pixels the head's cross-entropy averages over (all pixels, or the valid ones
    with ``avg_non_ignore=True``) and scaled by that loss's ``loss_weight``, all at the logits'
    resolution."""

    def __init__(self, model: nn.Module, loss: PairedDistillLoss, mode: str = 'region',
                 use_aux: bool = False) -> None:
        self.mode, self.use_aux = mode, use_aux
        self.heads: Dict[str, nn.Module] = {'decode': _last(model.decode_head)}
        if use_aux:
            if not model.with_auxiliary_head:
                raise ValueError('IPSDHook(use_aux=True): the model has no auxiliary_head')
            aux = model.auxiliary_head
            for k, head in enumerate(aux if isinstance(aux, nn.ModuleList) else [aux]):
                self.heads[f'aux{k}'] = head
        for name, head in self.heads.items():
            if not (isinstance(head, BaseDecodeHead)
                    and isinstance(getattr(head, 'conv_seg', None), nn.Conv2d)):
                raise TypeError(f'IPSDHook: the {name} head {type(head).__name__} does not '
                                'classify pixels with a conv_seg layer (e.g. PointRend, '
                                f'Mask2Former, K-Net); not supported. Supported: {SUPPORTED}')
        super().__init__(model, loss)

    def modules(self) -> Dict[str, nn.Module]:
        return {name: head.conv_seg for name, head in self.heads.items()}

    def terms(self, data_samples: Sequence) -> Tuple[Terms, Dict[str, float]]:
        pairs = find_pairs(data_samples)
        # One row per (pair, class both hold), read from the metadata on the host.
        rows = [(k, a, b, int(c)) for k, (a, b) in enumerate(pairs)
                for c in data_samples[a].get(CLASSES)]
        labels = torch.stack([s.gt_sem_seg.data for s in data_samples])  # (B, 1, H, W)
        terms, stats = {}, {}
        for name, head in self.heads.items():  # every recorded head must have run
            logits = self.recorder.get(name)
            small = F.interpolate(labels.float(), logits.shape[-2:], mode='nearest')[:, 0].long()
            total, count, regions, empty, gated = self._head_sum(logits, small, pairs, rows,
                                                                 name)
            norm, weight = self.normaliser(head, small)
            key = 'loss_ipsd' if name == 'decode' else f'loss_ipsd_{name}'
            terms[key] = total * weight / norm
            if name == 'decode':
                stats = dict(ipsd_pairs=len(pairs), ipsd_regions=regions,
                             ipsd_empty_pairs=empty, ipsd_gated=gated,
                             ipsd_kl_per_pixel=total.detach() / count.clamp(min=1),
                             ipsd_pixel_share=count / norm)
        return terms, stats

    @staticmethod
    def normaliser(head: BaseDecodeHead, labels: Tensor) -> Tuple[Tensor, float]:
        """(cells the head's first loss averages over, that loss's weight) at ``labels'``
        resolution; the count a tensor, so nothing waits for the device."""
        loss = head.loss_decode[0] if isinstance(head.loss_decode, nn.ModuleList) \
            else head.loss_decode
        if getattr(loss, 'avg_non_ignore', False):
            count = (labels != head.ignore_index).sum().float().clamp(min=1)
        else:
            count = torch.full((), max(labels.numel(), 1), dtype=torch.float32,
                               device=labels.device)
        return count, float(getattr(loss, 'loss_weight', 1.0))

    def _head_sum(self, logits: Tensor, labels: Tensor, pairs, rows, name: str):
        """The head's summed term, the elements it is over, and the regions, empty pairs and
        gated pairs (tensors). Region sums for every image and class at once (a one-hot
        product), then one row per (pair, class): no per-region loop, no wait for the device."""
        num = logits.shape[1]
        if not rows:
            zero = zero_like(logits)
            return zero, zero.detach(), 0, len(pairs), 0
        _check_classes(max(c for *_, c in rows), num, f'the {name} head',
                       "set IntraClassPatchSwap's ignore_index to the decode head's "
                       f'ignore_index ({self.heads[name].ignore_index}) and check num_classes')
        z = logits.float().flatten(2)  # (B, C, P)
        flat = labels.flatten(1)  # (B, P); ignore and unknown labels go to an extra bin
        flat = torch.where((flat >= 0) & (flat < num), flat, num)
        onehot = F.one_hot(flat, num + 1)[..., :num].to(z.dtype)  # (B, P, num)
        with torch.autocast(z.device.type, enabled=False):  # sums of thousands of logits
            sums = torch.bmm(z, onehot)  # (B, C, num): float32 even under AMP
        counts = onehot.sum(1)  # (B, num)
        pair, ia, ib, cls = to_device(list(zip(*rows)), logits.device)
        cnt = torch.stack([counts[ia, cls], counts[ib, cls]], 1)  # (N, 2) pixels per member
        present = (cnt > 0).all(1)  # a region can vanish at the logits' resolution
        za = sums[ia, :, cls] / cnt[:, :1].clamp(min=1)  # (N, C) region means
        zb = sums[ib, :, cls] / cnt[:, 1:].clamp(min=1)
        found = torch.zeros(len(pairs), device=logits.device).index_add_(0, pair, present.float())
        regions, empty = present.sum(), (found == 0).sum()
        if self.mode == 'pixel':
            # Each pixel's row: the (pair, class) its image and label belong to, else -1.
            owner = torch.full((len(labels), num + 1), -1, dtype=torch.long, device=z.device)
            rows_n = torch.arange(len(rows), device=z.device)
            owner[ia, cls], owner[ib, cls] = rows_n, rows_n
            owner = owner.gather(1, flat)  # (B, P)
            pixels = z.transpose(1, 2)  # (B, P, C)
            anchors, partners = to_device(list(zip(*pairs)), z.device)
            total, gated, count = self.loss.region_to_pixel_sum(
                za, zb, cls, pixels[anchors].flatten(0, 1), owner[anchors].flatten(),
                pixels[partners].flatten(0, 1), owner[partners].flatten(), valid=present)
        else:
            total, gated, count = self.loss.pair_sum(za, zb, cls, weights=cnt, valid=present)
        return total, count, regions, empty, gated


def to_device(columns: List[Sequence[int]], device: torch.device) -> Tensor:
    """Host integers as one (K, N) long tensor on ``device``, copied without waiting for it."""
    host = torch.tensor(columns, dtype=torch.long)
    if device.type == 'cuda':
        host = host.pin_memory()
    return host.to(device, non_blocking=True)


class _DetectorAdapter(Adapter):
    """Shared by the detector families: matched instances -> class logits -> paired KL, divided
    by the normaliser the classification loss was given in the same forward (its
    ``avg_factor``) and scaled by that loss's ``loss_weight``."""
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
                            f'normaliser from; not supported. Supported: {SUPPORTED}')
        super().__init__(model, loss)

    def cls_head(self) -> nn.Module:
        raise NotImplementedError

    def kwargs_of(self) -> Sequence[str]:
        return ('loss_cls', )

    def normaliser(self) -> Tuple[float, float]:
        factors = {float(kw.get('avg_factor')) if kw.get('avg_factor') is not None else None
                   for kw in self.recorder.all('loss_cls')}
        if None in factors or len(factors) != 1:
            raise RuntimeError(f'IPSDHook: {type(self.cls_head()).__name__} called its loss_cls '
                               f'with avg_factor {sorted(map(str, factors))}; one number is '
                               'needed as the normaliser, so this head is not supported')
        weight = float(getattr(self.cls_head().loss_cls, 'loss_weight', 1.0))
        return max(factors.pop(), 1.0), weight

    def terms(self, data_samples: Sequence) -> Tuple[Terms, Dict[str, float]]:
        pairs = find_pairs(data_samples)
        matches = [(a, i, b, j) for a, b in pairs for i, j in data_samples[a].get(INSTANCE_PAIRS)]
        empty = sum(not data_samples[a].get(INSTANCE_PAIRS) for a, _ in pairs)
        stats = dict(ipsd_pairs=len(pairs), ipsd_instances=len(matches), ipsd_empty_pairs=empty,
                     ipsd_gated=0)
        if not matches:
            return {'loss_ipsd': self.zero()}, stats
        # Each instance that takes part gets one row of logits, sample by sample.
        keys = sorted({(a, i) for a, i, _, _ in matches} | {(b, j) for _, _, b, j in matches})
        row = {key: n for n, key in enumerate(keys)}
        boxes = [get_box_tensor(data_samples[k].gt_instances.bboxes)[
            [i for kk, i in keys if kk == k]] for k in range(len(data_samples))]
        classes = torch.stack([data_samples[a].gt_instances.labels[i]
                               for a, i, _, _ in matches])
        num = self.cls_head().num_classes
        # Both checks in one read from the device.
        finite, largest = torch.stack([torch.isfinite(torch.cat(boxes)).all().long(),
                                       classes.max().long()]).tolist()
        if not finite:
            bad = next(k for k, bx in enumerate(boxes) if not torch.isfinite(bx).all())
            raise ValueError(f'IPSDHook: data sample {bad} holds non-finite gt boxes (NaN or '
                             'inf); fix or filter these annotations')
        _check_classes(largest, num, type(self.cls_head()).__name__,
                       "the dataset's classes must match the head's num_classes")
        logits = self.box_logits(boxes)
        rows_a, rows_b = to_device([[row[(a, i)] for a, i, _, _ in matches],
                                    [row[(b, j)] for _, _, b, j in matches]], logits.device)
        total, stats['ipsd_gated'], count = self.loss.pair_sum(
            logits[rows_a], logits[rows_b], classes.to(logits.device), sigmoid=self.sigmoid)
        norm, weight = self.normaliser()
        stats['ipsd_kl_per_instance'] = total.detach() / count.clamp(min=1)
        stats['ipsd_normaliser'] = norm
        return {'loss_ipsd': total * (weight / norm)}, stats

    def zero(self) -> Tensor:
        raise NotImplementedError

    def box_logits(self, boxes: List[Tensor]) -> Tensor:
        raise NotImplementedError


class TwoStageAdapter(_DetectorAdapter):
    """mmdet ``TwoStageDetector`` with a ``StandardRoIHead`` (Faster/Mask R-CNN): the neck
    features of the training forward, then the RoI head's box classifier on the ground-truth
    boxes; softmax logits including the background class. Normalised by the sampled RoIs the
    classifier's cross-entropy averages over."""

    def __init__(self, model: nn.Module, loss: PairedDistillLoss,
                 num_classes: Optional[int] = None) -> None:
        roi_head = getattr(model, 'roi_head', None)
        if type(roi_head) is not StandardRoIHead or not isinstance(
                getattr(roi_head, 'bbox_head', None), ConvFCBBoxHead):
            raise TypeError(f'IPSDHook: the two-stage detector {type(model).__name__} has a '
                            f'{type(roi_head).__name__} with a '
                            f'{type(getattr(roi_head, "bbox_head", None)).__name__}; only a '
                            'StandardRoIHead with a ConvFC box head (Shared2FCBBoxHead) is '
                            f'supported. Supported: {SUPPORTED}')
        if getattr(roi_head.bbox_head, 'custom_cls_channels', False) or getattr(
                roi_head.bbox_head.loss_cls, 'use_sigmoid', False):
            raise TypeError('IPSDHook: the RoI box head classifies with a sigmoid or custom '
                            'activation; only the softmax cross-entropy classifier is supported')
        super().__init__(model, loss, num_classes)

    def cls_head(self) -> nn.Module:
        return self.model.roi_head.bbox_head

    def modules(self) -> Dict[str, nn.Module]:
        return {'feats': self.model.neck if self.model.with_neck else self.model.backbone,
                'loss_cls': self.cls_head().loss_cls}

    def zero(self) -> Tensor:
        return zero_like(*self.recorder.get('feats'))

    def box_logits(self, boxes: List[Tensor]) -> Tensor:
        feats = self.recorder.get('feats')
        roi_head = self.model.roi_head
        extractor, head = roi_head.bbox_roi_extractor, roi_head.bbox_head
        rois = bbox2roi([b.to(feats[0].dtype) for b in boxes])
        roi_feats = extractor(feats[:extractor.num_inputs], rois)
        if roi_head.with_shared_head:
            roi_feats = roi_head.shared_head(roi_feats)
        return head(roi_feats)[0]


class DenseHeadAdapter(_DetectorAdapter):
    """mmdet single-stage detectors with a dense head (RetinaNet, FCOS, ATSS, GFL): the
    classification maps of the training forward, averaged over the anchors of a location,
    pooled inside each ground-truth box on every level (summed-area tables), then averaged
    across levels. Sigmoid heads (``use_sigmoid_cls``) distil with the per-class Bernoulli KL,
    softmax heads with the softmax KL. Normalised by the head's own normaliser (its positives)."""
    HEADS = (RetinaHead, FCOSHead, ATSSHead, GFLHead)

    def __init__(self, model: nn.Module, loss: PairedDistillLoss,
                 num_classes: Optional[int] = None) -> None:
        head = getattr(model, 'bbox_head', None)
        # Subclasses may change what forward returns (TOOD's scores are probabilities): only
        # the listed heads themselves are known to return logits.
        if type(head) not in self.HEADS:
            raise TypeError(f'IPSDHook: the dense head {type(head).__name__} is not supported '
                            "(its classification output must be logits the adapter knows how "
                            f'to normalise). Supported: {SUPPORTED}')
        self.sigmoid = bool(head.use_sigmoid_cls)
        super().__init__(model, loss, num_classes)

    def cls_head(self) -> nn.Module:
        return self.model.bbox_head

    def modules(self) -> Dict[str, nn.Module]:
        return {'head': self.model.bbox_head, 'loss_cls': self.model.bbox_head.loss_cls}

    def zero(self) -> Tensor:
        return zero_like(*self.recorder.get('head')[0])

    def box_logits(self, boxes: List[Tensor]) -> Tensor:
        head = self.model.bbox_head
        cls_scores = self.recorder.get('head')[0]
        pooled = []
        for level, stride in zip(cls_scores, head.prior_generator.strides):
            n, channels, h, w = level.shape
            maps = level.float().view(n, channels // head.cls_out_channels,
                                      head.cls_out_channels, h, w).mean(1)
            pooled.append(box_means(maps, boxes, stride))
        return torch.stack(pooled).mean(0)


def box_means(maps: Tensor, boxes: List[Tensor], stride) -> Tensor:
    """Mean of (B, C, h, w) ``maps`` over the locations inside each box (at least the one
    holding its centre), boxes in input pixels; rows sample by sample."""
    sy, sx = (stride, stride) if isinstance(stride, (int, float)) else (stride[1], stride[0])
    n, c, h, w = maps.shape
    table = F.pad(maps.cumsum(2).cumsum(3), (1, 0, 1, 0))  # (B, C, h + 1, w + 1)
    rows = []
    for k, bx in enumerate(boxes):
        if len(bx) == 0:
            continue
        bx = bx.float()
        x0 = (bx[:, 0] / sx).floor().clamp(0, w - 1).long()
        y0 = (bx[:, 1] / sy).floor().clamp(0, h - 1).long()
        x1 = torch.maximum((bx[:, 2] / sx).ceil().clamp(max=w).long(), x0 + 1)
        y1 = torch.maximum((bx[:, 3] / sy).ceil().clamp(max=h).long(), y0 + 1)
        t = table[k]
        sums = t[:, y1, x1] - t[:, y0, x1] - t[:, y1, x0] + t[:, y0, x0]  # (C, N)
        rows.append((sums / ((y1 - y0) * (x1 - x0)).float()).t())
    return torch.cat(rows)


def build_adapter(model: nn.Module, loss: PairedDistillLoss, mode: str = 'region',
                  use_aux: bool = False, num_classes: Optional[int] = None) -> Adapter:
    """The adapter for ``model``'s family; a clear error for the rest. ``num_classes``: the
    train dataset's, checked against a detector's classifier."""
    if isinstance(model, EncoderDecoder):
        return SegmentorAdapter(model, loss, mode, use_aux)
    if mode != 'region':
        raise ValueError(f"IPSDHook(mode='{mode}') is for segmentors; detectors distil per "
                         "instance: use mode='region'")
    if use_aux:
        raise ValueError('IPSDHook(use_aux=True) is for segmentors with an auxiliary head')
    if isinstance(model, TwoStageDetector):
        return TwoStageAdapter(model, loss, num_classes)
    if isinstance(model, SingleStageDetector):
        return DenseHeadAdapter(model, loss, num_classes)
    raise TypeError(f'IPSDHook does not support {type(model).__name__}. Supported: {SUPPORTED}')
