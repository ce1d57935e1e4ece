"""The adapter of mmseg's encoder-decoder segmentors (DeepLabV3, PSPNet, FCN, UPerNet,
SegFormer…): the decode head's ``conv_seg`` logits, per class region of each pair."""
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..pair_meta import CLASSES
from .adapter import Adapter, BatchTerms, check_classes, count, register_adapter, supported
from .loss import PairedDistillLoss, zero_like
from .pairs import find_pairs, to_device


class HeadSum(NamedTuple):
    """One head's summed term over a batch and what it counted (all tensors)."""
    total: Tensor  # Σ of the distilled KL (weighted by the student's pixels)
    pixels: Tensor  # the student pixels the sum is over
    regions: Tensor  # (pair, class) regions present in both members at the logits' size
    empty_pairs: Tensor  # pairs with no such region
    gated: Tensor  # regions the gate dropped


def _last(module: nn.Module) -> nn.Module:
    return module[-1] if isinstance(module, nn.ModuleList) else module


@register_adapter
class SegmentorAdapter(Adapter):
    """mmseg ``EncoderDecoder`` / ``CascadeEncoderDecoder``: the decode head's logits (the last
    head of a cascade), and optionally the auxiliary heads'. Per pair and per class both members
    hold, ``region`` distils the region-mean logits (each region weighted by the student's pixel
    count), ``pixel`` the teacher's region distribution into every student pixel. The sum is
    divided by the pixels the head's cross-entropy averages over (all pixels, or the valid ones
    with ``avg_non_ignore=True``) and scaled by that loss's ``loss_weight``, all at the logits'
    resolution."""
    library = 'mmseg'
    supports = ('EncoderDecoder / CascadeEncoderDecoder whose (last) decode head classifies '
                'with conv_seg (e.g. DeepLabV3, PSPNet, FCN, UPerNet, OCRNet, SegFormer)')

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
            if not (isinstance(head, _mmseg()[0])
                    and isinstance(getattr(head, 'conv_seg', None), nn.Conv2d)):
                raise TypeError(f'IPSDHook: the {name} head {type(head).__name__} does not '
                                'classify pixels with a conv_seg layer (e.g. PointRend, '
                                f'Mask2Former, K-Net); not supported. Supported: {supported()}')
        super().__init__(model, loss)

    @classmethod
    def accepts(cls, model: nn.Module) -> bool:
        # Mask classification heads (Mask2Former) are not decode heads of pixel logits: they
        # have their own adapter (mask_classification.py).
        decode_head, encoder_decoder = _mmseg()
        return isinstance(model, encoder_decoder) and isinstance(_last(model.decode_head),
                                                                 decode_head)

    @classmethod
    def build(cls, model: nn.Module, loss: PairedDistillLoss, mode: str, use_aux: bool,
              num_classes: Optional[int]) -> 'SegmentorAdapter':
        head = _last(model.decode_head)
        if num_classes is not None and getattr(head, 'num_classes', num_classes) < num_classes:
            raise ValueError(f'IPSDHook: the decode head {type(head).__name__} has '
                             f'num_classes={head.num_classes} but the train dataset has '
                             f'{num_classes} classes; set decode_head.num_classes (and '
                             'auxiliary_head.num_classes) to the dataset\'s')
        return cls(model, loss, mode, use_aux)

    def modules(self) -> Dict[str, nn.Module]:
        return {name: head.conv_seg for name, head in self.heads.items()}

    def terms(self, data_samples: Sequence) -> BatchTerms:
        pairs = find_pairs(data_samples)
        # One row per (pair, class both hold), read from the metadata on the host.
        rows = [(k, a, b, int(c)) for k, (a, b) in enumerate(pairs)
                for c in data_samples[a].get(CLASSES)]
        labels = torch.stack([s.gt_sem_seg.data for s in data_samples])  # (B, 1, H, W)
        losses, stats = {}, {}
        for name, head in self.heads.items():  # every recorded head must have run
            logits = self.recorder.get(name)
            small = F.interpolate(labels.float(), logits.shape[-2:], mode='nearest')[:, 0].long()
            head_sum = self.head_sum(logits, small, pairs, rows, name)
            norm, weight = self.normaliser(head, small)
            key = 'loss_ipsd' if name == 'decode' else f'loss_ipsd_{name}'
            losses[key] = head_sum.total * weight / norm
            if name == 'decode':
                stats = dict(ipsd_pairs=len(pairs), ipsd_regions=head_sum.regions,
                             ipsd_empty_pairs=head_sum.empty_pairs, ipsd_gated=head_sum.gated,
                             ipsd_kl_per_pixel=head_sum.total.detach() / head_sum.pixels.clamp(
                                 min=1),
                             ipsd_pixel_share=head_sum.pixels / norm)
        return BatchTerms(losses, stats)

    @staticmethod
    def normaliser(head: nn.Module, labels: Tensor) -> Tuple[Tensor, float]:
        """(cells the head's first loss averages over, that loss's weight) at ``labels'``
        resolution; the count a tensor, so nothing waits for the device."""
        loss = head.loss_decode[0] if isinstance(head.loss_decode, nn.ModuleList) \
            else head.loss_decode
        if getattr(loss, 'avg_non_ignore', False):
            pixels = (labels != head.ignore_index).sum().float().clamp(min=1)
        else:
            pixels = torch.full((), max(labels.numel(), 1), dtype=torch.float32,
                                device=labels.device)
        return pixels, float(getattr(loss, 'loss_weight', 1.0))

    def head_sum(self, logits: Tensor, labels: Tensor, pairs, rows, name: str) -> HeadSum:
        """One head's summed term and counts. Region sums for every image and class at once (a
        one-hot product), then one row per (pair, class): no per-region loop, no wait for the
        device."""
        num = logits.shape[1]
        if not rows:
            zero = zero_like(logits)
            return HeadSum(zero, zero.detach(), count(0, logits), count(len(pairs), logits),
                           count(0, logits))
        check_classes(max(c for *_, c in rows), num, f'the {name} head',
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
            result = self.loss.region_to_pixel_sum(
                za, zb, cls, pixels[anchors].flatten(0, 1), owner[anchors].flatten(),
                pixels[partners].flatten(0, 1), owner[partners].flatten(), valid=present)
        else:
            result = self.loss.pair_sum(za, zb, cls, weights=cnt, valid=present)
        return HeadSum(result.total, result.count, regions, empty, result.gated)


def _mmseg() -> tuple:
    """mmseg's ``BaseDecodeHead`` and ``EncoderDecoder``, imported when a model is checked,
    not on ``import ipsd_mm.seg``: ``mmseg.models`` imports MMDetection (for its
    Mask2FormerHead), which a segmentation user may not have, or have broken."""
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead
    from mmseg.models.segmentors import EncoderDecoder
    return BaseDecodeHead, EncoderDecoder
