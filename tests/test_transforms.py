"""IntraClassPatchSwap through real mmdet/mmseg loading, packing and MultiImageMixDataset."""

import numpy as np
import pytest
import torch
from mmdet.registry import TRANSFORMS as DET_TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.registry import init_default_scope
from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS

import ipsd_mm  # noqa: F401
from helpers import det_dataset_cfg, seg_dataset_cfg
from ipsd_mm.data.rng import ProcessRNG


def build_swap(scope, **kwargs):
    """Through the registry, as a config does: the scope picks mmseg's or mmdet's transform."""
    init_default_scope(scope)
    registry = SEG_TRANSFORMS if scope == 'mmseg' else DET_TRANSFORMS
    return registry.build(dict(type='IntraClassPatchSwap', **kwargs))


def load_seg(root, i):
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    ds = DATASETS.build(seg_dataset_cfg(root, [dict(type='LoadImageFromFile'),
                                               dict(type='LoadAnnotations')]))
    return ds[i]


def load_det(root, i):
    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    ds = DATASETS.build(det_dataset_cfg(root, [dict(type='LoadImageFromFile'),
                                               dict(type='LoadAnnotations', with_bbox=True,
                                                    with_mask=True)]))
    return ds[i]


def test_seg_swap_on_loaded_samples_then_pack(digit_scenes):
    a, b = load_seg(digit_scenes, 0), load_seg(digit_scenes, 1)
    swap = build_swap('mmseg', patch_size=8, min_class_fraction=0.5)
    a['mix_results'] = [b]
    out = swap(a)
    assert out is a
    for member in (a, b):
        rec = member['ipsd']
        assert set(rec) >= {'swapped', 'classes', 'num_cells'}
        assert member['img'].dtype == np.uint8 and member['gt_seg_map'].dtype == np.uint8
    assert a['ipsd']['classes'] == b['ipsd']['classes']
    assert 0 in a['ipsd']['classes']  # both scenes hold background
    a.pop('mix_results')
    pack = SEG_TRANSFORMS.build(dict(type='PackSegInputs'))
    packed = pack(a)
    assert packed['inputs'].shape[1:] == a['img'].shape[:2]
    assert tuple(packed['data_samples'].gt_sem_seg.data.shape[1:]) == a['img'].shape[:2]
    assert repr(swap).startswith('SegIntraClassPatchSwap(patch_size=(8, 8), ')


def test_det_swap_on_loaded_samples_then_pack(digit_scenes):
    a, b = load_det(digit_scenes, 0), load_det(digit_scenes, 1)
    boxes_before = a['gt_bboxes'].tensor.clone()
    a['gt_ignore_flags'][0] = True  # an ignored instance never takes part
    swap = build_swap('mmdet', box_grid=2, min_cell_size=2)
    a['mix_results'] = [b]
    swap(a)
    a.pop('mix_results')
    rec = a['ipsd']
    assert rec['instance_pairs'] == b['ipsd']['instance_pairs']
    assert isinstance(a['gt_masks'], BitmapMasks) and len(a['gt_masks']) == len(a['gt_bboxes'])
    assert torch.equal(a['gt_bboxes'].tensor, boxes_before)
    packed = DET_TRANSFORMS.build(dict(type='PackDetInputs'))(a)
    packed_b = DET_TRANSFORMS.build(dict(type='PackDetInputs'))(b)
    gt_a, gt_b = packed['data_samples'].gt_instances, packed_b['data_samples'].gt_instances
    assert len(gt_a) == int((~a['gt_ignore_flags']).sum())
    for i, j in rec['instance_pairs']:  # indices into the packed gt_instances
        assert gt_a.labels[i] == gt_b.labels[j]


def test_polygon_masks_become_bitmaps_and_follow_pixels():
    rng = np.random.default_rng(0)
    def member():
        return dict(img=rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
                    gt_bboxes=HorizontalBoxes(np.array([[4, 4, 28, 28]], np.float32)),
                    gt_bboxes_labels=np.array([3]), gt_ignore_flags=np.array([False]),
                    gt_masks=PolygonMasks([[np.array([4, 4, 28, 4, 28, 28, 4, 28], float)]],
                                          32, 32))
    a, b = member(), member()
    a['mix_results'] = [b]
    build_swap('mmdet', box_grid=4, swap_ratio=1.0)(a)
    assert a['ipsd']['swapped'] and a['ipsd']['num_cells'] == 16
    assert isinstance(a['gt_masks'], BitmapMasks) and isinstance(b['gt_masks'], BitmapMasks)
    assert a['gt_masks'].masks.shape == (1, 32, 32)


def test_grayscale_images_and_int_maps():
    rng = np.random.default_rng(0)
    def member():
        label = np.zeros((32, 32), np.int64)
        label[:, 16:] = 2
        return dict(img=rng.integers(0, 255, (32, 32), dtype=np.uint8), gt_seg_map=label,
                    seg_fields=['gt_seg_map'])
    a, b = member(), member()
    a['mix_results'] = [b]
    build_swap('mmseg', patch_size=8, swap_ratio=1.0)(a)
    assert a['ipsd']['swapped'] and a['ipsd']['num_cells'] == 16
    assert a['img'].shape == (32, 32) and a['gt_seg_map'].dtype == np.int64


@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
def test_bad_input_is_named(scope):
    name = scope[2:]
    swap = build_swap(scope)
    results = dict(img=np.zeros((8, 8, 3), np.uint8), gt_seg_map=np.zeros((8, 8), np.uint8),
                   seg_fields=['gt_seg_map'], gt_bboxes=HorizontalBoxes(np.zeros((0, 4))),
                   gt_bboxes_labels=np.zeros(0, np.int64))
    if name == 'det':
        results.pop('gt_seg_map'), results.pop('seg_fields')
    with pytest.raises(KeyError, match='mix_results'):
        swap(dict(results))
    partner = dict(img=np.zeros((8, 8, 3), np.uint8))
    key = 'gt_seg_map' if name == 'seg' else 'gt_bboxes'
    with pytest.raises(KeyError, match=key):
        swap(dict(results, mix_results=[partner]))
    with pytest.raises(TypeError, match='not_an_option'):
        build_swap(scope, not_an_option=1)
    with pytest.raises(ValueError, match='swap_ratio'):
        build_swap(scope, swap_ratio=(0.8, 0.2))
    with pytest.raises(ValueError, match='prob'):
        build_swap(scope, prob=2)


def test_seeded_runs_repeat_and_prob_zero_changes_nothing(digit_scenes):
    def run(seed, prob=1.0):
        np.random.seed(seed)
        torch.manual_seed(seed)
        a, b = load_seg(digit_scenes, 2), load_seg(digit_scenes, 3)
        a['mix_results'] = [b]
        build_swap('mmseg', patch_size=8, prob=prob, min_class_fraction=0.3)(a)
        return a
    r1, r2 = run(5), run(5)
    assert r1['ipsd']['cells'] == r2['ipsd']['cells'] and r1['ipsd']['swapped']
    np.testing.assert_array_equal(r1['img'], r2['img'])
    untouched = run(5, prob=0.0)
    np.testing.assert_array_equal(untouched['img'], load_seg(digit_scenes, 2)['img'])
    assert not untouched['ipsd']['swapped']


class _Draws(torch.utils.data.Dataset):
    def __init__(self):
        self.rng = ProcessRNG()
        self.rng()  # used once in the parent before the workers fork

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return int(self.rng().integers(1 << 30))


def test_each_worker_draws_its_own_numbers():
    loader = torch.utils.data.DataLoader(_Draws(), batch_size=1, num_workers=2)
    draws = [int(x) for x in loader]
    assert len(set(draws)) == 4


def test_seg_multi_image_mix_dataset(digit_scenes):
    from mmseg.datasets import MultiImageMixDataset
    init_default_scope('mmseg')
    ds = MultiImageMixDataset(
        dataset=seg_dataset_cfg(digit_scenes, [dict(type='LoadImageFromFile'),
                                               dict(type='LoadAnnotations')]),
        pipeline=[dict(type='IntraClassPatchSwap', patch_size=8), dict(type='PackSegInputs')])
    for i in range(3):
        item = ds[i]
        assert item['inputs'].shape[0] == 3 and 'ipsd' not in item


def test_det_multi_image_mix_dataset(digit_scenes):
    from mmdet.datasets import MultiImageMixDataset
    init_default_scope('mmdet')
    ds = MultiImageMixDataset(
        dataset=det_dataset_cfg(digit_scenes, [dict(type='LoadImageFromFile'),
                                               dict(type='LoadAnnotations', with_bbox=True,
                                                    with_mask=True)]),
        pipeline=[dict(type='IntraClassPatchSwap', box_grid=2, min_cell_size=2),
                  dict(type='PackDetInputs')])
    for i in range(3):
        item = ds[i]
        assert len(item['data_samples'].gt_instances) > 0


def _det_member(rng, masks=True, num=1, mask_size=32):
    member = dict(img=rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
                  gt_bboxes=HorizontalBoxes(np.tile(np.array([[4, 4, 28, 28]], np.float32),
                                                    (num, 1))),
                  gt_bboxes_labels=np.full(num, 3), gt_ignore_flags=np.zeros(num, bool))
    if masks:
        member['gt_masks'] = BitmapMasks(np.ones((num, mask_size, mask_size), np.uint8),
                                         mask_size, mask_size)
    return member


@pytest.mark.parametrize('who', ['anchor', 'partner'])
def test_masks_on_one_member_only_are_named(who):
    rng = np.random.default_rng(0)
    a, b = _det_member(rng, masks=who == 'anchor'), _det_member(rng, masks=who == 'partner')
    a['mix_results'] = [b]
    with pytest.raises(KeyError, match=f"the {who} holds 'gt_masks'"):
        build_swap('mmdet', box_grid=2)(a)


@pytest.mark.parametrize('change,message', [
    (dict(mask_size=9), 'gt_masks are 9x9 but its .img. is 32x32'),
    (dict(num_masks=0), 'holds 0 gt_masks for 1 gt_bboxes'),
    (dict(num_masks=2), 'holds 2 gt_masks for 1 gt_bboxes'),
])
def test_masks_that_do_not_fit_image_or_boxes_are_named(change, message):
    rng = np.random.default_rng(0)
    a, b = _det_member(rng), _det_member(rng)
    if 'mask_size' in change:
        a['gt_masks'] = BitmapMasks(np.ones((1, 9, 9), np.uint8), 9, 9)
    else:
        n = change['num_masks']
        a['gt_masks'] = BitmapMasks(np.ones((n, 32, 32), np.uint8), 32, 32)
    a['mix_results'] = [b]
    with pytest.raises(ValueError, match=message):
        build_swap('mmdet', box_grid=2)(a)


def test_non_finite_boxes_are_named():
    rng = np.random.default_rng(0)
    a, b = _det_member(rng, masks=False), _det_member(rng, masks=False)
    b['gt_bboxes'] = HorizontalBoxes(np.array([[np.nan, 4, 28, 28]], np.float32))
    a['mix_results'] = [b]
    with pytest.raises(ValueError, match="partner's gt_bboxes hold non-finite"):
        build_swap('mmdet', box_grid=2)(a)


@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
def test_one_way_swap_leaves_the_partner_as_loaded(scope):
    rng = np.random.default_rng(0)
    if scope == 'mmdet':
        a, b = _det_member(rng), _det_member(rng)
        b['gt_masks'].masks[:, :, 16:] = 0
        swap = build_swap(scope, box_grid=2, swap_ratio=1.0, one_way=True)
    else:
        def seg():
            label = np.zeros((32, 32), np.uint8)
            label[:, 16:] = 2
            return dict(img=rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
                        gt_seg_map=label, seg_fields=['gt_seg_map'])
        a, b = seg(), seg()
        swap = build_swap(scope, patch_size=8, swap_ratio=1.0, one_way=True)
    before = {k: (v.masks.copy() if hasattr(v, 'masks') else np.copy(v))
              for k, v in b.items() if k in ('img', 'gt_seg_map', 'gt_masks')}
    a_img = a['img'].copy()
    a['mix_results'] = [b]
    swap(a)
    assert a['ipsd']['swapped'] and a['ipsd']['num_cells'] > 0
    assert b['ipsd']['num_cells'] == 0 and b['ipsd']['cells'] == []
    assert not np.array_equal(a['img'], a_img)
    for key, value in before.items():
        now = b[key].masks if key == 'gt_masks' else b[key]
        np.testing.assert_array_equal(now, value)
    assert 'one_way=True' in repr(swap)
