"""Per model family, the logits the distillation needs, taken from the training forward that
already runs: forward hooks record module outputs (as MMRazor's recorders do), with no second
forward of the network. Pairs are found from the pair metadata, never from batch positions."""
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
from mmdet.structures.bbox import bbox2roi
from mmseg.models.segmentors import EncoderDecoder
from torch import Tensor, nn

from ..pair_meta import ANCHOR, CLASSES, INSTANCE_PAIRS, PAIR_ID, PARTNER, ROLE
from .loss import paired_kl, region_to_pixel_kl, zero_like

Terms = Dict[str, Tensor]


def find_pairs(data_samples: Sequence) -> List[Tuple[int, int]]:
    """Batch positions (anchor, partner) of each pair, from ``ipsd_pair_id`` / ``ipsd_role``."""
    members: Dict[int, Dict[int, int]] = defaultdict(dict)
    for pos, sample in enumerate(data_samples):
        if PAIR_ID not in sample or ROLE not in sample:
            raise KeyError(
                f'IPSDHook: data sample {pos} carries no {PAIR_ID}/{ROLE}: wrap the train '
                "dataset in dict(type='IntraClassPairDataset', ...) and set the train "
                "dataloader's collate_fn=dict(type='pair_collate')")
        members[int(sample.get(PAIR_ID))][int(sample.get(ROLE))] = pos
    pairs = []
    for pair_id, roles in sorted(members.items()):
        if set(roles) != {ANCHOR, PARTNER}:
            raise ValueError(f'IPSDHook: pair {pair_id} lacks a member in this batch (roles '
                             f'{sorted(roles)}); use pair_collate, which keeps pairs whole')
        pairs.append((roles[ANCHOR], roles[PARTNER]))
    return pairs


class Recorder:
    """Keeps the outputs of modules while recording is on."""

    def __init__(self, modules: Dict[str, nn.Module]) -> None:
        self.names = list(modules)
        self.outputs: Dict[str, object] = {}
        self.recording = False
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in modules.items()]

    def _hook(self, name: str):
        def hook(module, inputs, output):
            if self.recording:
                self.outputs[name] = output
        return hook

    def get(self, name: str):
        if name not in self.outputs:
            raise RuntimeError(f'IPSDHook: {name} was not called during the training forward; '
                               'this model does not run the way its adapter expects')
        return self.outputs[name]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class Adapter:
    """Records what a model family's training forward computes and turns it into the
    distillation terms of a batch."""

    def __init__(self, model: nn.Module, mode: str, temperature: float, use_aux: bool) -> None:
        self.model, self.mode, self.temperature, self.use_aux = model, mode, temperature, use_aux
        self.recorder = Recorder(self.modules())

    def modules(self) -> Dict[str, nn.Module]:
        raise NotImplementedError

    def terms(self, data_samples: Sequence) -> Tuple[Terms, Dict[str, float]]:
        raise NotImplementedError

    def remove(self) -> None:
        self.recorder.remove()


def _last(module):
    return module[-1] if isinstance(module, nn.ModuleList) else module


class SegmentorAdapter(Adapter):
    """mmseg ``EncoderDecoder`` / ``CascadeEncoderDecoder``: the decode head's logits (the last
    head of a cascade), and optionally the auxiliary heads'. Per pair and per class both members
    hold, ``region`` distils the region-mean logits, ``pixel`` the teacher's region distribution
    into every student pixel of the region."""

    def modules(self) -> Dict[str, nn.Module]:
        modules = {'decode': _last(self.model.decode_head).conv_seg}
        if self.use_aux:
            if not self.model.with_auxiliary_head:
                raise ValueError('IPSDHook(use_aux=True): the model has no auxiliary_head')
            aux = self.model.auxiliary_head
            for k, head in enumerate(aux if isinstance(aux, nn.ModuleList) else [aux]):
                modules[f'aux{k}'] = head.conv_seg
        return modules

    def terms(self, data_samples: Sequence) -> Tuple[Terms, Dict[str, float]]:
        pairs = find_pairs(data_samples)
        labels = torch.stack([s.gt_sem_seg.data for s in data_samples])  # (B, 1, H, W)
        terms, stats = {}, {}
        for name in self.recorder.names:  # every recorded head must have run
            logits = self.recorder.get(name)
            small = F.interpolate(labels.float(), logits.shape[-2:], mode='nearest')
            loss, regions, empty = self._head_term(logits, small[:, 0].long(), pairs,
                                                   data_samples)
            key = 'loss_ipsd' if name == 'decode' else f'loss_ipsd_{name}'
            terms[key] = loss
            if name == 'decode':
                stats = dict(ipsd_pairs=len(pairs), ipsd_regions=regions, ipsd_empty_pairs=empty)
        return terms, stats

    def _head_term(self, logits: Tensor, labels: Tensor, pairs, data_samples):
        region, cls, pixels, owners = [[], []], [], [[], []], [[], []]
        empty = 0
        for a, b in pairs:
            shared = data_samples[a].get(CLASSES)
            found = False
            for c in shared:
                masks = (labels[a] == c, labels[b] == c)
                if not (masks[0].any() and masks[1].any()):
                    continue  # the region vanished at the logits' resolution
                found = True
                for side, (pos, mask) in enumerate(zip((a, b), masks)):
                    pix = logits[pos].permute(1, 2, 0)[mask]  # (P, C)
                    region[side].append(pix.mean(0))
                    if self.mode == 'pixel':
                        pixels[side].append(pix)
                        owners[side].append(torch.full((len(pix),), len(cls),
                                                       dtype=torch.long, device=pix.device))
                cls.append(c)
            empty += not found
        if not cls:
            return zero_like(logits), 0, empty
        za, zb = torch.stack(region[0]), torch.stack(region[1])
        classes = torch.as_tensor(cls, dtype=torch.long, device=logits.device)
        if self.mode == 'region':
            return paired_kl(za, zb, classes, self.temperature), len(cls), empty
        return region_to_pixel_kl(za, zb, classes, torch.cat(pixels[0]), torch.cat(owners[0]),
                                  torch.cat(pixels[1]), torch.cat(owners[1]),
                                  self.temperature), len(cls), empty


class _DetectorAdapter(Adapter):
    """Shared by the detector families: matched instances -> class logits -> paired KL."""

    def terms(self, data_samples: Sequence) -> Tuple[Terms, Dict[str, float]]:
        pairs = find_pairs(data_samples)
        matches = [(a, i, b, j) for a, b in pairs for i, j in data_samples[a].get(INSTANCE_PAIRS)]
        empty = sum(not data_samples[a].get(INSTANCE_PAIRS) for a, _ in pairs)
        stats = dict(ipsd_pairs=len(pairs), ipsd_instances=len(matches), ipsd_empty_pairs=empty)
        if not matches:
            return {'loss_ipsd': self.zero()}, stats
        # Each instance that takes part gets one row of logits, sample by sample.
        keys = sorted({(a, i) for a, i, _, _ in matches} | {(b, j) for _, _, b, j in matches})
        row = {key: n for n, key in enumerate(keys)}
        boxes = [data_samples[k].gt_instances.bboxes[[i for kk, i in keys if kk == k]]
                 for k in range(len(data_samples))]
        logits = self.box_logits(boxes)
        rows_a = torch.as_tensor([row[(a, i)] for a, i, _, _ in matches], device=logits.device)
        rows_b = torch.as_tensor([row[(b, j)] for _, _, b, j in matches], device=logits.device)
        classes = torch.stack([data_samples[a].gt_instances.labels[i] for a, i, _, _ in matches])
        loss = paired_kl(logits[rows_a], logits[rows_b], classes.to(logits.device),
                         self.temperature)
        return {'loss_ipsd': loss}, stats

    def zero(self) -> Tensor:
        raise NotImplementedError

    def box_logits(self, boxes: List[Tensor]) -> Tensor:
        raise NotImplementedError


class TwoStageAdapter(_DetectorAdapter):
    """mmdet ``TwoStageDetector`` (Faster/Mask/Cascade R-CNN): the neck features of the
    training forward, then the RoI head's box classifier (the last stage of a cascade) on the
    ground-truth boxes. Class logits include the background class."""

    def modules(self) -> Dict[str, nn.Module]:
        return {'feats': self.model.neck if self.model.with_neck else self.model.backbone}

    def zero(self) -> Tensor:
        return zero_like(*self.recorder.get('feats'))

    def box_logits(self, boxes: List[Tensor]) -> Tensor:
        feats = self.recorder.get('feats')
        roi_head = self.model.roi_head
        extractor, head = _last(roi_head.bbox_roi_extractor), _last(roi_head.bbox_head)
        rois = bbox2roi([b.to(feats[0].dtype) for b in boxes])
        roi_feats = extractor(feats[:extractor.num_inputs], rois)
        if getattr(roi_head, 'with_shared_head', False):
            roi_feats = roi_head.shared_head(roi_feats)
        return head(roi_feats)[0]


class DenseHeadAdapter(_DetectorAdapter):
    """mmdet single-stage detectors with a dense head (RetinaNet, FCOS, ATSS, GFL): the
    classification maps of the training forward, averaged over the anchors of a location,
    pooled inside each ground-truth box on every level (summed-area tables), then averaged
    across levels."""

    def modules(self) -> Dict[str, nn.Module]:
        head = self.model.bbox_head
        if not hasattr(head, 'cls_out_channels') or not hasattr(head, 'prior_generator'):
            raise TypeError(f'IPSDHook: the dense head {type(head).__name__} has no '
                            'cls_out_channels/prior_generator; it is not a supported dense head')
        return {'head': head}

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


SUPPORTED = ('mmseg EncoderDecoder / CascadeEncoderDecoder (e.g. DeepLabV3, PSPNet, FCN); '
             'mmdet TwoStageDetector (e.g. Faster/Mask/Cascade R-CNN); mmdet '
             'SingleStageDetector with a dense head (e.g. RetinaNet, FCOS, ATSS, GFL)')


def build_adapter(model: nn.Module, mode: str, temperature: float, use_aux: bool) -> Adapter:
    """The adapter for ``model``'s family; a clear error for the rest."""
    if isinstance(model, EncoderDecoder):
        return SegmentorAdapter(model, mode, temperature, use_aux)
    if mode != 'region':
        raise ValueError(f"IPSDHook(mode='{mode}') is for segmentors; detectors distil per "
                         "instance: use mode='region'")
    if use_aux:
        raise ValueError('IPSDHook(use_aux=True) is for segmentors with an auxiliary head')
    if isinstance(model, TwoStageDetector):
        return TwoStageAdapter(model, mode, temperature, use_aux)
    if isinstance(model, SingleStageDetector):
        return DenseHeadAdapter(model, mode, temperature, use_aux)
    raise TypeError(f'IPSDHook does not support {type(model).__name__}. Supported: {SUPPORTED}')
