"""The adapters with real mmseg/mmdet models: each normaliser pinned against the task loss's
own, what is supported runs a training step with the term, the rest is refused by name."""
import copy
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import MODELS, init_default_scope

import ipsd_mm  # noqa: F401
from ipsd_mm.distill import IPSDHook, PairedDistillLoss
from ipsd_mm.distill import build_adapter
from ipsd_mm.distill.segmentor import SegmentorAdapter
from ipsd_mm.pair_meta import CLASSES
from runner_utils import CONFIGS
from ipsd_mm.testing.synthetic import for_cpu, pair_batch


def lib_config(scope: str, rel: str) -> Config:
    pkg = __import__(scope)
    return Config.fromfile(osp.join(osp.dirname(pkg.__file__), '.mim', 'configs', rel))


def build(model_cfg, scope: str):
    from mmengine.config import ConfigDict
    init_default_scope(scope)
    model_cfg = ConfigDict(copy.deepcopy(model_cfg))
    for_cpu(model_cfg)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def study(name: str):
    cfg = Config.fromfile(osp.join(CONFIGS, 'study', name + '.py'))
    return build(cfg.model, cfg.default_scope)


class _Runner:
    def __init__(self, model):
        self.model, self.logger = model, MMLogger.get_instance('ipsd_test')


def train_step(model, batch, hook=None):
    """One forward/backward with the hook wrapping loss; returns the loss dict."""
    if hook is not None:
        hook.before_run(_Runner(model))
    model.train()
    data = model.data_preprocessor(batch, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k and isinstance(v, torch.Tensor))
    total.backward()
    if hook is not None:
        hook.after_run(_Runner(model))
    return losses


# -- normalisers ---------------------------------------------------------------------------


@pytest.mark.parametrize('mode', ['pixel', 'region'])
@pytest.mark.parametrize('avg_non_ignore', [False, True])
def test_seg_term_equals_the_decode_cross_entropy_per_pixel(mode, avg_non_ignore):
    """With a one-hot teacher at T=1 the KL of a student pixel is its cross-entropy to the
    teacher's class: the term must then equal mmseg's own CE (same logits, labels only on the
    student's region), value and gradient, whatever the CE averages over."""
    model = study('deeplabv3_r18-d8-w16_digit-scenes')
    head = model.decode_head
    head.loss_decode.avg_non_ignore = avg_non_ignore
    adapter = SegmentorAdapter(model, PairedDistillLoss(temperature=1.0), mode=mode)
    batch = pair_batch('seg', 4, (16, 16), classes=[2])
    labels = torch.stack([s.gt_sem_seg.data for s in batch['data_samples']])[:, 0]
    labels[:, :, :4] = 2  # class 2 in every image; some ignore pixels elsewhere
    labels[:, -2:, :] = 255
    for s, lab in zip(batch['data_samples'], labels):
        s.gt_sem_seg.data = lab[None].clone()
    c = head.out_channels
    logits = torch.randn(4, c, 16, 16)
    teacher = torch.full((c, ), -25.0)
    teacher[2] = 25.0
    for anchor in (0, 2):  # the anchors are sure of class 2: they teach
        logits[anchor][:, labels[anchor] == 2] = teacher[:, None]
    for partner in (1, 3):  # region mode distils the region mean: one logit vector per region
        if mode == 'region':
            logits[partner][:, labels[partner] == 2] = torch.randn(c)[:, None]
    logits.requires_grad_(True)
    adapter.recorder.calls['decode'] = [logits]
    terms, stats = adapter.terms(batch['data_samples'])
    term = terms['loss_ipsd']
    (grad_term, ) = torch.autograd.grad(term, logits)

    target = torch.full_like(labels, 255)
    for partner in (1, 3):
        target[partner][labels[partner] == 2] = 2
    # The CE averages over the head's valid pixels, which are the real labels' valid pixels.
    ce_logits = logits
    ce = head.loss_decode(ce_logits, target, ignore_index=255)
    if avg_non_ignore:  # mmseg divides by the target's valid pixels: rescale to the labels'
        ce = ce * (target != 255).sum() / (labels != 255).sum()
    (grad_ce, ) = torch.autograd.grad(ce, logits)
    assert stats['ipsd_pairs'] == 2 and stats['ipsd_regions'] == 2
    norm = float((labels != 255).sum()) if avg_non_ignore else float(labels.numel())
    distilled = float((target != 255).sum())
    assert stats['ipsd_pixel_share'] == pytest.approx(float(distilled / norm))
    assert stats['ipsd_kl_per_pixel'] == pytest.approx(term.item() * norm / distilled, rel=1e-5)
    assert term.item() == pytest.approx(ce.item(), rel=1e-4)
    torch.testing.assert_close(grad_term, grad_ce, rtol=1e-3, atol=1e-7)


def test_seg_term_scales_with_the_decode_loss_weight():
    model = study('deeplabv3_r18-d8-w16_digit-scenes')
    batch = pair_batch('seg', 2, (16, 16), classes=[1], block=4)
    adapter = SegmentorAdapter(model, PairedDistillLoss())
    logits = torch.randn(2, model.decode_head.out_channels, 16, 16)
    adapter.recorder.calls['decode'] = [logits]
    one = adapter.terms(batch['data_samples'])[0]['loss_ipsd']
    model.decode_head.loss_decode.loss_weight = 0.4
    adapter.recorder.calls['decode'] = [logits]
    assert adapter.terms(batch['data_samples'])[0]['loss_ipsd'].item() == \
        pytest.approx(0.4 * one.item(), rel=1e-6)


def _direct_seg_sum(logits, labels, data_samples, loss, mode):
    """The seg term's sum, pixel count and gated regions, one region at a time: the definition
    the batched adapter must agree with."""
    total, count, gated, regions = 0.0, 0.0, 0, 0
    for a in range(0, len(data_samples), 2):
        b = a + 1
        for c in data_samples[a].get(CLASSES):
            ma, mb = labels[a] == c, labels[b] == c
            if not (ma.any() and mb.any()):
                continue
            regions += 1
            pa, pb = logits[a].permute(1, 2, 0)[ma], logits[b].permute(1, 2, 0)[mb]
            za, zb = pa.mean(0, keepdim=True), pb.mean(0, keepdim=True)
            a_teaches, keep = loss.teachers(za, zb, torch.tensor([c]))
            if not keep.item():
                gated += 1
                continue
            teacher, student_pixels = (za, pb) if a_teaches.item() else (zb, pa)
            if mode == 'region':
                student = zb if a_teaches.item() else za
                total += float(loss.divergence(teacher, student).sum()) * len(student_pixels)
            else:
                total += float(loss.divergence(teacher.expand_as(student_pixels),
                                               student_pixels).sum())
            count += len(student_pixels)
    return total, count, gated, regions


@pytest.mark.parametrize('mode', ['region', 'pixel'])
@pytest.mark.parametrize('gate', ['none', 'argmax'])
def test_batched_seg_term_equals_the_region_by_region_definition(mode, gate):
    """Three pairs, several classes each, ignore pixels, a class the metadata names but the
    logits' resolution lost, and a pair with no shared class left: the one-hot batched sums
    give what a loop over regions gives, stats included."""
    model = study('deeplabv3_r18-d8-w16_digit-scenes')
    loss = PairedDistillLoss(temperature=2.0, gate=gate)
    adapter = SegmentorAdapter(model, loss, mode=mode)
    batch = pair_batch('seg', 6, (16, 16), classes=[1, 2, 3, 5], block=4)
    samples = batch['data_samples']
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (6, 16, 16), generator=gen)
    labels[:, 0, :] = 255
    labels[1][labels[1] == 2] = 1  # class 2 only in the anchor of pair 0
    labels[4:][labels[4:] > 0] = 0  # pair 2: no shared class left
    for s, lab in zip(samples, labels):
        s.gt_sem_seg.data = lab[None].clone()
    logits = torch.randn(6, model.decode_head.out_channels, 16, 16, generator=gen) * 3
    adapter.recorder.calls['decode'] = [logits]
    terms, stats = adapter.terms(samples)
    total, count, gated, regions = _direct_seg_sum(logits, labels, samples, loss, mode)
    norm = float(labels.numel())
    # pair 0: classes 1, 3 (2 lost in the partner, 5 nowhere); pair 1: 1, 2, 3; pair 2: none
    assert regions == 2 + 3 and int(stats['ipsd_regions']) == regions
    assert int(stats['ipsd_empty_pairs']) == 1 and int(stats['ipsd_gated']) == gated
    assert (gated > 0) == (gate == 'argmax')  # the gate is exercised, not vacuous
    assert float(stats['ipsd_pixel_share']) == pytest.approx(count / norm)
    assert terms['loss_ipsd'].item() == pytest.approx(total / norm, rel=1e-5)


def test_seg_term_is_float32_under_autocast():
    """Region sums run over thousands of logits: under AMP they must not be summed in half
    precision (a bf16 product here is off by far more than the tolerance)."""
    model = study('deeplabv3_r18-d8-w16_digit-scenes')
    adapter = SegmentorAdapter(model, PairedDistillLoss(temperature=1.0))
    batch = pair_batch('seg', 2, (64, 64), classes=[1, 2], block=16)
    logits = torch.randn(2, model.decode_head.out_channels, 64, 64,
                         generator=torch.Generator().manual_seed(0)) * 4 + 3
    adapter.recorder.calls['decode'] = [logits]
    exact = adapter.terms(batch['data_samples'])[0]['loss_ipsd'].item()
    adapter.recorder.calls['decode'] = [logits]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        term = adapter.terms(batch['data_samples'])[0]['loss_ipsd']
    assert term.dtype == torch.float32 and term.item() == pytest.approx(exact, rel=1e-5)


def _capture_cls_calls(head):
    """Every call of the head's loss_cls as (args, kwargs), seen independently of the
    adapter: the targets and avg_factor the task loss was given."""
    calls, original = [], head.loss_cls.forward
    head.loss_cls.forward = lambda *args, **kwargs: calls.append((args, kwargs)) or original(
        *args, **kwargs)
    return calls


def with_box_masks(batch: dict) -> dict:
    """``batch`` (in place) with each instance's box as its mask, for the mask models."""
    from mmdet.structures.mask import BitmapMasks
    for sample in batch['data_samples']:
        boxes = sample.gt_instances.bboxes.long()
        h, w = sample.metainfo['img_shape']
        masks = torch.zeros(len(boxes), h, w, dtype=torch.uint8)
        for mask, (x0, y0, x1, y1) in zip(masks, boxes.tolist()):
            mask[y0:y1, x0:x1] = 1
        sample.gt_instances.masks = BitmapMasks(masks.numpy(), h, w)
    return batch


def _recorded_forward(model, batch):
    """The hook built on ``model`` and one training forward of ``batch`` under its recording
    (the task loss alone, not the hook's wrapper): (hook, data samples, task losses)."""
    hook = IPSDHook(temperature=1.0)
    hook.before_run(_Runner(model))
    model.train()
    data = model.data_preprocessor(batch, True)
    with hook.adapter.recording():
        losses = type(model).loss(model, data['inputs'], data['data_samples'])
    return hook, data['data_samples'], losses


@pytest.mark.parametrize('name,head_of', [
    ('faster-rcnn_r18-w16_fpn_digit-scenes', lambda m: m.roi_head.bbox_head),
    ('retinanet_r18-w16_fpn_digit-scenes', lambda m: m.bbox_head),
], ids=['faster-rcnn', 'retinanet'])
def test_detector_term_is_divided_by_the_classification_loss_normaliser(name, head_of):
    """Two-stage: the sampled RoIs the RoI cross-entropy averages over; one-stage: the
    positives the focal loss averages over. The term is the pair sum over exactly that."""
    torch.manual_seed(0)
    model = study(name)
    calls = _capture_cls_calls(head_of(model))
    hook, samples, losses = _recorded_forward(model, pair_batch('det', 4, (64, 64)))
    adapter = hook.adapter
    seen = [kwargs.get('avg_factor') for _, kwargs in calls]
    norm, weight = adapter.normaliser()
    assert seen and len(set(seen)) == 1 and norm == pytest.approx(max(float(seen[0]), 1.0))
    if 'rcnn' in name:  # every sampled RoI counts: 128 per image here
        assert norm == 4 * 128
    terms, stats = adapter.terms(samples)
    boxes = torch.cat([s.gt_instances.bboxes[[0, 1] if k % 2 == 0 else [0, 3]]
                       for k, s in enumerate(samples)])
    # rows: a0 i0, a0 i1, b0 j0, b0 j3, a1 ..., b1 ...
    logits = adapter.box_logits(boxes, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    rows_a, rows_b = torch.tensor([0, 1, 4, 5]), torch.tensor([2, 3, 6, 7])
    expected, _, _ = hook.loss.pair_sum(logits[rows_a], logits[rows_b],
                                     torch.tensor([0, 1, 0, 1]), sigmoid=adapter.sigmoid)
    assert stats['ipsd_instances'] == 4 and 'loss_cls' in losses
    assert terms['loss_ipsd'].item() == pytest.approx(expected.item() * weight / norm, rel=1e-4)
    assert adapter.sigmoid == ('retina' in name)  # RetinaNet distils with the Bernoulli KL
    hook.after_run(_Runner(model))


def test_rtmdet_term_is_divided_by_its_quality_weighted_positives(monkeypatch):
    """RTMDet calls its quality focal loss with avg_factor=1.0 per level, then divides by the
    rank-averaged sum of the assign metrics: the term takes that number (seen here from the
    head's own reduce_mean), not the 1.0 its loss_cls was given."""
    import mmdet.models.dense_heads.rtmdet_head as rtmdet_head
    seen, reduce_mean = [], rtmdet_head.reduce_mean
    monkeypatch.setattr(rtmdet_head, 'reduce_mean',
                        lambda t: seen.append(reduce_mean(t).clone()) or seen[-1])
    torch.manual_seed(0)
    model = build(lib_config('mmdet', DET_MODELS['rtmdet']).model, 'mmdet')
    for conv in model.bbox_head.rtm_reg:  # boxes of a stride's size: IoUs well above zero
        conv.weight.data.zero_()
        conv.bias.data.fill_(1.0)
    hook, samples, losses = _recorded_forward(model, pair_batch('det', 4, (64, 64)))
    adapter = hook.adapter
    norm, weight = adapter.normaliser()
    assert type(adapter).__name__ == 'RTMDetAdapter' and adapter.sigmoid
    assert norm.item() == pytest.approx(seen[0].clamp(min=1).item()) and norm.item() > 5
    terms, stats = adapter.terms(samples)
    boxes = torch.cat([s.gt_instances.bboxes[[0, 1] if k % 2 == 0 else [0, 3]]
                       for k, s in enumerate(samples)])
    logits = adapter.box_logits(boxes, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    expected = hook.loss.pair_sum(logits[[0, 1, 4, 5]], logits[[2, 3, 6, 7]],
                                  torch.tensor([0, 1, 0, 1]), sigmoid=True).total
    assert stats['ipsd_instances'] == 4 and 'loss_cls' in losses
    assert terms['loss_ipsd'].item() == pytest.approx(expected.item() * weight / norm.item(),
                                                      rel=1e-4)
    hook.after_run(_Runner(model))
    assert 'loss_by_feat_single' not in vars(model.bbox_head)  # the class's method again


QUERY_MODELS = {
    'detr': 'detr/detr_r50_8xb2-150e_coco.py',
    'deformable-detr': 'deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
    'dino': 'dino/dino-4scale_r50_8xb2-12e_coco.py',
}


def query_model(key: str):
    cfg = lib_config('mmdet', QUERY_MODELS[key]).model
    cfg.num_queries = 50  # DINO picks its queries among the encoder's points: 85 at 64x64
    return build(cfg, 'mmdet')


def test_last_layer_matches_are_found_by_where_the_logits_point():
    """The assigner calls on the last layer are told from the others (an earlier layer, the
    encoder's proposals, DINO's denoising queries ahead of the matching ones) by the view
    their logits are; a missing image is an error, not a silent hole."""
    from types import SimpleNamespace as Call

    from mmengine.structures import InstanceData

    from ipsd_mm.distill.matching import last_layer_matches
    layers = torch.randn(3, 2, 7, 4)  # (layer, image, 2 denoising + 5 matching queries, class)
    encoder = torch.randn(2, 5, 4)

    def call(scores, image):
        gt_inds = torch.tensor([0, 1, 0, 2, 0]) if image else torch.tensor([2, 0, 0, 0, 1])
        return Call(kwargs=dict(pred_instances=InstanceData(scores=scores),
                                gt_instances=InstanceData(labels=torch.tensor([3, 1]))),
                    output=Call(gt_inds=gt_inds))
    calls = [call(layers[layer, b, 2:], b) for layer in range(3) for b in range(2)]
    calls += [call(encoder[b], b) for b in range(2)]
    found = last_layer_matches(calls, layers[-1], 'Head')
    assert len(found.scores) == 2 and all(torch.equal(found.scores[b], calls[4 + b].kwargs[
        'pred_instances'].scores) for b in range(2))
    assert found.classes[1].tolist() == [-1, 3, -1, 1, -1]
    with pytest.raises(RuntimeError, match=r'matched the last decoder layer of images \[0\] '
                                           r'of 2'):
        last_layer_matches(calls[:5], layers[-1], 'Head')


@pytest.mark.parametrize('key', list(QUERY_MODELS))
def test_query_term_reads_the_last_layers_matching_and_normaliser(key):
    """The logits of the query the Hungarian matcher gave each instance on the last decoder
    layer (matched again here, independently, on that layer's matching queries), over the
    cls_avg_factor the head gave that layer's loss_cls."""
    from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
    from mmengine.structures import InstanceData
    torch.manual_seed(0)
    model = query_model(key)
    head = model.bbox_head
    calls = _capture_cls_calls(head)
    hook, samples, _ = _recorded_forward(model, pair_batch('det', 4, (64, 64)))
    adapter = hook.adapter
    cls_all, box_all = adapter.recorder.get('head')
    norm, weight = adapter.normaliser()
    last_call = calls[len(cls_all) - 1][1]  # the last decoder layer's loss_cls call
    assert norm.item() == pytest.approx(float(last_call['avg_factor']))
    assert norm.item() > 1 and adapter.sigmoid == (key != 'detr')

    def matched_logits(b, i):
        scores = cls_all[-1][b, -model.num_queries:]  # DINO: after the denoising queries
        h, w = samples[b].metainfo['img_shape']
        boxes = bbox_cxcywh_to_xyxy(box_all[-1][b, -model.num_queries:]) * scores.new_tensor(
            [w, h, w, h])
        gt_inds = head.assigner.assign(InstanceData(scores=scores, bboxes=boxes),
                                       samples[b].gt_instances, samples[b].metainfo).gt_inds
        return scores[gt_inds == i + 1][0]

    terms, stats = adapter.terms(samples)
    members = [(0, 0), (0, 1), (1, 0), (1, 3), (2, 0), (2, 1), (3, 0), (3, 3)]
    logits = torch.stack([matched_logits(b, i) for b, i in members])
    expected = hook.loss.pair_sum(logits[[0, 1, 4, 5]], logits[[2, 3, 6, 7]],
                                  torch.tensor([0, 1, 0, 1]), sigmoid=adapter.sigmoid).total
    assert stats['ipsd_instances'] == 4
    assert terms['loss_ipsd'].item() == pytest.approx(expected.item() * weight / norm.item(),
                                                      rel=1e-4)
    hook.after_run(_Runner(model))
    assert 'assign' not in vars(head.assigner)


def test_mask2former_term_reads_each_class_query_and_the_heads_normaliser():
    """Semantic Mask2Former: per pair and class both hold, the query the loss's matching gave
    that class in each member (seen here in the labels the last layer's loss_cls was given),
    over that call's avg_factor (class_weight summed over all queries), times its weight."""
    torch.manual_seed(0)
    cfg = lib_config('mmseg', SEG_MODELS['mask2former']).model
    cfg.data_preprocessor = dict(type='SegDataPreProcessor', size=(64, 64))
    model = build(cfg, 'mmseg')
    head = model.decode_head
    calls = _capture_cls_calls(head)
    hook, samples, _ = _recorded_forward(model, pair_batch('seg', 4, (64, 64), block=16))
    adapter = hook.adapter
    last = adapter.recorder.get('head')[0][-1]  # (B, Q, C + 1)
    (_, labels, _), kwargs = calls[len(adapter.recorder.get('head')[0]) - 1]
    labels = labels.view(last.shape[:2])  # the class each query was trained towards
    terms, stats = adapter.terms(samples)
    norm, weight = stats['ipsd_normaliser'], head.loss_cls.loss_weight
    assert norm.item() == pytest.approx(float(kwargs['avg_factor'])) and weight == 2.0
    rows = [(a, b, int(c)) for a, b in [(0, 1), (2, 3)] for c in samples[a].get(CLASSES)
            if (labels[a] == c).any() and (labels[b] == c).any()]  # both images hold c
    za = torch.stack([last[a][labels[a] == c][0] for a, _, c in rows])
    zb = torch.stack([last[b][labels[b] == c][0] for _, b, c in rows])
    cls = torch.tensor([c for *_, c in rows])
    expected = hook.loss.pair_sum(za, zb, cls, weights=torch.tensor(head.class_weight)[cls])
    assert rows and stats['ipsd_regions'].item() == len(rows)
    assert terms['loss_ipsd'].item() == pytest.approx(
        expected.total.item() * weight / norm.item(), rel=1e-4)
    hook.after_run(_Runner(model))


def test_mask2former_instance_term_reads_each_instances_query_and_the_heads_normaliser():
    """mmdet Mask2Former: each instance's query is one the last layer's loss_cls trained
    towards the instance's class, no two instances share one, and the normaliser is that
    call's avg_factor."""
    torch.manual_seed(0)
    cfg = lib_config('mmdet', DET_MODELS['mask2former-instance']).model
    cfg.data_preprocessor.batch_augments = None  # LSJ pads each image to 1024x1024
    model = build(cfg, 'mmdet')
    head = model.panoptic_head
    calls = _capture_cls_calls(head)
    hook, samples, _ = _recorded_forward(model, with_box_masks(pair_batch('det', 4, (64, 64))))
    adapter = hook.adapter
    last = adapter.recorder.get('head')[0][-1]
    (_, labels, _), kwargs = calls[len(adapter.recorder.get('head')[0]) - 1]
    labels = labels.view(last.shape[:2])
    norm, weight = adapter.normaliser()
    assert norm.item() == pytest.approx(float(kwargs['avg_factor'])) and weight == 2.0
    samples_k = torch.arange(4).repeat_interleave(4)
    indices = torch.arange(4).repeat(4)
    logits, found = adapter.instance_logits(None, samples_k, indices)
    assert found.all()
    for k, (b, i) in enumerate(zip(samples_k.tolist(), indices.tolist())):
        query = [q for q in range(last.shape[1]) if torch.equal(last[b, q], logits[k])]
        assert len(query) == 1 and labels[b, query[0]] == samples[b].gt_instances.labels[i]
    assert len({(b, torch.where((last[b] == logits[k]).all(1))[0].item())
                for k, b in enumerate(samples_k.tolist())}) == 16  # one query per instance
    terms, stats = adapter.terms(samples)
    assert stats['ipsd_instances'] == 4 and terms['loss_ipsd'].item() > 0
    hook.after_run(_Runner(model))


# -- what is supported trains; the rest is refused -----------------------------------------

SEG_MODELS = {
    'deeplabv3': '_base_/models/deeplabv3_r50-d8.py',
    'pspnet': '_base_/models/pspnet_r50-d8.py',
    'fcn': '_base_/models/fcn_r50-d8.py',
    'upernet': '_base_/models/upernet_r50.py',
    'segformer': '_base_/models/segformer_mit-b0.py',
    'mask2former': 'mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py',
}
DET_MODELS = {
    'faster-rcnn': '_base_/models/faster-rcnn_r50_fpn.py',
    'mask-rcnn': '_base_/models/mask-rcnn_r50_fpn.py',
    'retinanet': '_base_/models/retinanet_r50_fpn.py',
    'fcos': 'fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    'atss': 'atss/atss_r50_fpn_1x_coco.py',
    'gfl': 'gfl/gfl_r50_fpn_1x_coco.py',
    'rtmdet': 'rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
    **QUERY_MODELS,
    'mask2former-instance': 'mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
}


@pytest.mark.parametrize('key', list(SEG_MODELS) + list(DET_MODELS))
def test_supported_models_train_a_step_with_a_live_term(key):
    torch.manual_seed(0)
    seg = key in SEG_MODELS
    scope = 'mmseg' if seg else 'mmdet'
    cfg = lib_config(scope, SEG_MODELS[key] if seg else DET_MODELS[key]).model
    if 'num_queries' in cfg:
        cfg.num_queries = 50  # DINO picks its queries among the encoder's points: 85 here
    if cfg.data_preprocessor.get('batch_augments'):
        cfg.data_preprocessor.batch_augments = None  # LSJ pads each image to 1024x1024
    if seg:
        cfg.data_preprocessor = dict(type='SegDataPreProcessor', size=(64, 64))
    model = build(cfg, scope)
    batch = pair_batch('seg' if seg else 'det', 4, (64, 64), block=16)
    if key in ('mask-rcnn', 'mask2former-instance'):
        with_box_masks(batch)
    losses = train_step(model, batch, IPSDHook(temperature=1.0))
    assert math.isfinite(losses['loss_ipsd'].item()) and losses['loss_ipsd'].item() > 0
    assert losses['ipsd_pairs'].item() == 2
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


UNSUPPORTED = [
    ('mmseg', 'point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py', 'conv_seg'),
    ('mmseg', 'knet/knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512.py', 'conv_seg'),
    ('mmseg', 'maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py', 'MaskFormerHead'),
    ('mmdet', 'sparse_rcnn/sparse-rcnn_r50_fpn_1x_coco.py', 'SparseRoIHead'),
    ('mmdet', 'cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py', 'CascadeRoIHead'),
    ('mmdet', 'tood/tood_r50_fpn_1x_coco.py', 'TOODHead'),
    ('mmdet', 'rtmdet/rtmdet-ins_tiny_8xb32-300e_coco.py', 'RTMDetInsSepBNHead'),
    ('mmdet', 'conditional_detr/conditional-detr_r50_8xb2-50e_coco.py', 'ConditionalDETRHead'),
    ('mmdet', 'rpn/rpn_r50_fpn_1x_coco.py', 'RPNHead'),
]


@pytest.mark.parametrize('scope,rel,named', UNSUPPORTED,
                         ids=[r.split('/')[-1].split('_')[0] for _, r, _ in UNSUPPORTED])
def test_unsupported_models_are_refused_at_build_time_by_name(scope, rel, named):
    model = build(lib_config(scope, rel).model, scope)
    with pytest.raises(TypeError, match=f'{named}.*Supported|{named}.*not supported'):
        build_adapter(model, PairedDistillLoss())


@pytest.mark.parametrize('scope,rel', [('mmdet', DET_MODELS['retinanet']),
                                       ('mmseg', SEG_MODELS['mask2former'])],
                         ids=['detector', 'mask2former'])
def test_pixel_options_are_refused_where_there_are_no_pixel_logits(scope, rel):
    model = build(lib_config(scope, rel).model, scope)
    with pytest.raises(ValueError, match=r"mode='pixel'.*use mode='region'"):
        build_adapter(model, PairedDistillLoss(), mode='pixel')
    with pytest.raises(ValueError, match='use_aux=True.*use use_aux=False'):
        build_adapter(model, PairedDistillLoss(), use_aux=True)


def test_a_head_with_fewer_classes_than_the_dataset_is_refused():
    cfg = lib_config('mmdet', DET_MODELS['retinanet']).model
    cfg.bbox_head.num_classes = 1  # class-agnostic
    model = build(cfg, 'mmdet')
    with pytest.raises(ValueError, match='num_classes=1 but the train dataset has 10'):
        build_adapter(model, PairedDistillLoss(), num_classes=10)


def test_a_class_beyond_the_logits_names_both_settings():
    model = study('deeplabv3_r18-d8-w16_digit-scenes')
    adapter = SegmentorAdapter(model, PairedDistillLoss())
    batch = pair_batch('seg', 2, (16, 16), classes=[50], block=16)
    for s in batch['data_samples']:
        s.gt_sem_seg.data[:] = 50  # e.g. the swap's ignore_index was 255, the data's 50
        s.set_metainfo({CLASSES: [50]})
    adapter.recorder.calls['decode'] = [torch.randn(2, 11, 16, 16)]
    with pytest.raises(ValueError, match="class 50 .* 11 class logits.*ignore_index"):
        adapter.terms(batch['data_samples'])


def test_non_finite_boxes_are_a_clear_error():
    model = study('retinanet_r18-w16_fpn_digit-scenes')
    batch = pair_batch('det', 2, (64, 64))
    batch['data_samples'][1].gt_instances.bboxes[3, 0] = float('nan')
    hook = IPSDHook()
    hook.before_run(_Runner(model))
    model.train()
    data = model.data_preprocessor(batch, True)
    with pytest.raises(ValueError, match='non-finite gt boxes'):
        hook.adapter.model.loss(data['inputs'], data['data_samples'])


def test_a_recorded_module_that_runs_twice_is_an_error_not_a_silent_loss():
    model = study('deeplabv3_r18-d8-w16_digit-scenes')
    adapter = SegmentorAdapter(model, PairedDistillLoss())
    x = torch.randn(1, 32, 4, 4)
    with adapter.recording():
        model.decode_head.conv_seg(x)
        model.decode_head.conv_seg(x)
    with pytest.raises(RuntimeError, match='decode ran 2 times'):
        adapter.terms(pair_batch('seg', 2, (16, 16))['data_samples'])
    with adapter.recording():
        pass
    with pytest.raises(RuntimeError, match='decode was not called'):
        adapter.terms(pair_batch('seg', 2, (16, 16))['data_samples'])


def test_sigmoid_logits_distil_differently_from_softmax():
    """The dense-head term of a sigmoid head is not the softmax one (which is near zero on
    sigmoid-trained logits): the adapter picks the Bernoulli KL from use_sigmoid_cls."""
    model = study('retinanet_r18-w16_fpn_digit-scenes')
    adapter = build_adapter(model, PairedDistillLoss())
    assert adapter.sigmoid is True
    z = torch.randn(6, 10) - 4  # sigmoid-style logits: every class unlikely
    classes = torch.zeros(3, dtype=torch.long)
    bern, _, _ = adapter.loss.pair_sum(z[:3], z[3:], classes, sigmoid=True)
    soft, _, _ = adapter.loss.pair_sum(z[:3], z[3:], classes, sigmoid=False)
    assert bern.item() != pytest.approx(soft.item())
    assert F.softmax(z / 4, -1).max() < 0.5  # softmax at T=4 is nearly uniform here


def test_box_means_pool_every_box_of_the_batch_as_a_loop_would():
    """The one-stage pooling, all boxes at once: each row is the plain mean of the map's
    locations the box covers (at least the one holding its centre), on its own image."""
    from ipsd_mm.distill.dense_head import box_means
    torch.manual_seed(0)
    maps = torch.randn(3, 5, 8, 10)
    boxes = torch.tensor([[0., 0., 16., 16.], [9., 3., 11., 5.], [40., 20., 80., 64.],
                          [3., 3., 4., 4.]])
    samples = torch.tensor([2, 0, 1, 2])
    stride = 8
    expected = []
    for (x0, y0, x1, y1), k in zip(boxes.tolist(), samples.tolist()):
        c0, r0 = min(int(x0 // stride), 9), min(int(y0 // stride), 7)
        c1 = max(min(-int(-x1 // stride), 10), c0 + 1)
        r1 = max(min(-int(-y1 // stride), 8), r0 + 1)
        expected.append(maps[k, :, r0:r1, c0:c1].mean((1, 2)))
    torch.testing.assert_close(box_means(maps, boxes, samples, stride), torch.stack(expected),
                               rtol=1e-5, atol=1e-5)


def test_aux_term_is_the_aux_heads_own_term_at_its_own_weight():
    """use_aux distils the auxiliary head's conv_seg logits exactly as the decode head's: the
    same region sum over that head's logits, divided by its pixels and scaled by its own
    loss_weight (0.4 in the study config), not a copy of the decode term."""
    torch.manual_seed(0)
    model = study('deeplabv3_r18-d8-w16_digit-scenes')
    hook = IPSDHook(use_aux=True)
    hook.before_run(_Runner(model))
    model.train()
    data = model.data_preprocessor(pair_batch('seg', 4, (64, 64), block=16), True)
    adapter = hook.adapter
    with adapter.recording():
        type(model).loss(model, data['inputs'], data['data_samples'])
    terms, _ = adapter.terms(data['data_samples'])
    samples = data['data_samples']
    labels = torch.stack([s.gt_sem_seg.data for s in samples])
    pairs = [(0, 1), (2, 3)]
    rows = [(k, a, b, int(c)) for k, (a, b) in enumerate(pairs) for c in samples[a].get(CLASSES)]
    aux = model.auxiliary_head
    logits = adapter.recorder.get('aux0')
    small = F.interpolate(labels.float(), logits.shape[-2:], mode='nearest')[:, 0].long()
    norm, weight = SegmentorAdapter.normaliser(aux, small)
    expected = adapter.head_sum(logits, small, pairs, rows, 'aux0').total * weight / norm
    assert weight == pytest.approx(aux.loss_decode.loss_weight) and weight != 1.0
    assert terms['loss_ipsd_aux0'].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms['loss_ipsd_aux0'].item() > 0
    assert terms['loss_ipsd_aux0'].item() != pytest.approx(terms['loss_ipsd'].item(), rel=1e-3)
    adapter.recorder.clear()
    hook.after_run(_Runner(model))
