"""Class index, IntraClassPairDataset and pair_collate on small on-disk datasets."""
import copy
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS as DET_DATASETS
from mmengine.dataset import DefaultSampler, worker_init_fn
from mmengine.registry import FUNCTIONS, init_default_scope
from mmseg.registry import DATASETS as SEG_DATASETS
from pycocotools.coco import COCO

import ipsd_mm  # noqa: F401
from helpers import det_dataset_cfg, seg_dataset_cfg
from ipsd_mm.data import pair_collate
from ipsd_mm.data.class_index import segmentation_class_index
from ipsd_mm.pair_meta import CLASSES, INSTANCE_PAIRS, PAIR_ID, ROLE

SEG_LOAD = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
DET_LOAD = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]


def seg_pairs(root, **kwargs):
    init_default_scope('mmseg')
    return SEG_DATASETS.build(dict(
        type='IntraClassPairDataset', dataset=seg_dataset_cfg(root, SEG_LOAD),
        swap=dict(dict(type='IntraClassPatchSwap', patch_size=8), **kwargs.pop('swap', {})),
        pipeline=[dict(type='PackSegInputs')], **kwargs))


def det_pairs(root, **kwargs):
    init_default_scope('mmdet')
    return DET_DATASETS.build(dict(
        type='IntraClassPairDataset', dataset=det_dataset_cfg(root, DET_LOAD),
        swap=dict(dict(type='IntraClassPatchSwap', box_grid=2, min_cell_size=2),
                  **kwargs.pop('swap', {})),
        pipeline=[dict(type='PackDetInputs')], **kwargs))


def test_det_class_index_matches_annotations(digit_scenes):
    ds = det_pairs(digit_scenes)
    coco = COCO(osp.join(digit_scenes, 'annotations/train.json'))
    for i in range(len(ds)):
        img_id = ds.dataset.get_data_info(i)['img_id']
        cats = {a['category_id'] - 1 for a in coco.imgToAnns[img_id] if not a['iscrowd']}
        assert ds.class_index[i].tolist() == sorted(cats)


def test_seg_class_index_matches_label_maps_and_is_cached(digit_scenes, tmp_path):
    cache = str(tmp_path / 'index.pkl')
    ds = seg_pairs(digit_scenes, class_index_cache=cache)
    for i in range(len(ds)):
        label = cv2.imread(ds.dataset.get_data_info(i)['seg_map_path'], cv2.IMREAD_UNCHANGED)
        assert ds.class_index[i].tolist() == sorted(np.unique(label).tolist())
    stamp = os.stat(cache).st_mtime_ns
    again = seg_pairs(digit_scenes, class_index_cache=cache)  # reused: the file is untouched
    assert os.stat(cache).st_mtime_ns == stamp
    assert [c.tolist() for c in again.class_index] == [c.tolist() for c in ds.class_index]
    with open(cache, 'r+b') as f:  # truncated: rebuilt, not trusted
        f.truncate(10)
    assert [c.tolist() for c in seg_pairs(digit_scenes, class_index_cache=cache).class_index] \
        == [c.tolist() for c in ds.class_index]


def test_seg_cache_follows_label_files_and_settings(digit_scenes, tmp_path):
    root = str(tmp_path / 'copy')
    import shutil
    shutil.copytree(digit_scenes, root)
    cache = str(tmp_path / 'index.pkl')
    ds = seg_pairs(root, class_index_cache=cache)
    label_path = ds.dataset.get_data_info(0)['seg_map_path']
    cv2.imwrite(label_path, np.full((64, 64), 9, np.uint8))  # the label file changes
    assert seg_pairs(root, class_index_cache=cache).class_index[0].tolist() == [9]
    inner = seg_dataset_cfg(root, SEG_LOAD)
    inner['reduce_zero_label'] = True  # the label settings change: 9 becomes 8
    init_default_scope('mmseg')
    index = segmentation_class_index(SEG_DATASETS.build(inner), cache)
    assert index[0].tolist() == [8]


def test_every_pair_shares_a_class_and_partner_is_not_anchor(digit_scenes):
    for ds, key in ((seg_pairs(digit_scenes), CLASSES), (det_pairs(digit_scenes), INSTANCE_PAIRS)):
        assert len(ds) == len(ds.dataset) and ds.metainfo == ds.dataset.metainfo
        rng = np.random.default_rng(0)
        for i in range(len(ds)):
            for _ in range(5):
                j = ds.partner_of(i, rng)
                assert j != i
                assert set(ds.class_index[i].tolist()) & set(ds.class_index[j].tolist())
            a, b = ds[i]
            assert a['data_samples'].get(ROLE) == 0 and b['data_samples'].get(ROLE) == 1
            assert a['data_samples'].get(key) == b['data_samples'].get(key)


def test_lonely_class_gets_a_random_partner(digit_scenes):
    ds = det_pairs(digit_scenes)
    ds.class_index[0] = np.array([99])  # a class no other image holds
    ds.images_of_class[99] = np.array([0])
    ds._pairable[99] = False
    assert ds.partner_of(0, np.random.default_rng(0)) != 0


def test_bad_pipelines_and_datasets_are_named(digit_scenes, tmp_path):
    init_default_scope('mmseg')
    inner = seg_dataset_cfg(digit_scenes, SEG_LOAD)
    with pytest.raises(ValueError, match="'swap' is missing"):
        SEG_DATASETS.build(dict(type='IntraClassPairDataset', dataset=inner,
                                pipeline=[dict(type='PackSegInputs')]))
    with pytest.raises(ValueError, match="belongs in 'swap'"):  # the old layout says the fix
        SEG_DATASETS.build(dict(type='IntraClassPairDataset', dataset=inner,
                                pipeline=[dict(type='IntraClassPatchSwap'),
                                          dict(type='PackSegInputs')]))
    with pytest.raises(ValueError, match='PackSegInputs'):
        SEG_DATASETS.build(dict(type='IntraClassPairDataset', dataset=inner,
                                swap=dict(type='IntraClassPatchSwap'), pipeline=[]))
    empty = str(tmp_path / 'empty')
    os.makedirs(osp.join(empty, 'images/train'))
    os.makedirs(osp.join(empty, 'labels/train'))
    with pytest.raises(ValueError, match='empty'):
        seg_pairs(empty)
    blank = str(tmp_path / 'blank')
    for sub in ('images/train', 'labels/train'):
        os.makedirs(osp.join(blank, sub))
    cv2.imwrite(osp.join(blank, 'images/train/0.png'), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(osp.join(blank, 'labels/train/0.png'), np.full((8, 8), 255, np.uint8))
    with pytest.raises(ValueError, match='no image .* holds any class'):
        seg_pairs(blank)
    broken = str(tmp_path / 'broken')
    for sub in ('images/train', 'labels/train'):
        os.makedirs(osp.join(broken, sub))
    cv2.imwrite(osp.join(broken, 'images/train/0.png'), np.zeros((8, 8, 3), np.uint8))
    with open(osp.join(broken, 'labels/train/0.png'), 'wb') as f:
        f.write(b'not a png')
    with pytest.raises(OSError, match='cannot read label map'):
        seg_pairs(broken)


def test_lazy_init_and_repr(digit_scenes):
    ds = det_pairs(digit_scenes, lazy_init=True)
    assert not ds._fully_initialized
    assert len(ds) > 0 and ds._fully_initialized  # full_init on first use
    assert 'IntraClassPairDataset' in repr(ds)


def loader(ds, batch_size, seed, num_workers=2):
    from functools import partial
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, num_workers=num_workers, collate_fn=pair_collate,
        sampler=DefaultSampler(ds, shuffle=True, seed=seed),
        worker_init_fn=partial(worker_init_fn, num_workers=num_workers, rank=0, seed=seed),
        persistent_workers=num_workers > 0)


def test_dataloader_with_workers_and_preprocessors(digit_scenes):
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    from mmseg.models.data_preprocessor import SegDataPreProcessor
    assert FUNCTIONS.get('pair_collate') is pair_collate
    for ds, pre in ((seg_pairs(digit_scenes), SegDataPreProcessor(size_divisor=32)),
                    (det_pairs(digit_scenes), DetDataPreprocessor(pad_size_divisor=32))):
        for batch in loader(ds, batch_size=3, seed=1):
            samples = batch['data_samples']
            assert len(samples) == len(batch['inputs']) and len(samples) % 2 == 0
            assert [s.get(ROLE) for s in samples] == [0, 1] * (len(samples) // 2)
            ids = [s.get(PAIR_ID) for s in samples]
            assert ids == [k // 2 for k in range(len(samples))]  # unique per pair in the batch
            out = pre(batch, training=True)
            assert out['inputs'].shape[0] == len(samples)
        plain = ds[0][0]  # a batch of plain samples collates as pseudo_collate does
        assert pair_collate([plain])['inputs'][0] is plain['inputs']


def test_seeded_runs_give_the_same_pairs(digit_scenes):
    def pairs(seed):
        ds = det_pairs(digit_scenes)
        got = []
        for batch in loader(ds, batch_size=2, seed=seed):
            got += [(s.img_path, s.get(INSTANCE_PAIRS)) for s in batch['data_samples']]
        return got
    torch.manual_seed(0)
    first = pairs(3)
    torch.manual_seed(0)
    assert pairs(3) == first


@pytest.mark.parametrize('option,expected', [(True, 'default'), (None, 'default'), (False, 'off'),
                                             ('FILE', 'file')])
def test_class_index_cache_option_resolves_once(option, expected, digit_scenes, tmp_path,
                                                monkeypatch):
    monkeypatch.setenv('IPSD_MM_CACHE', str(tmp_path / 'default'))
    path = str(tmp_path / 'mine.pkl')
    ds = seg_pairs(digit_scenes, class_index_cache=path if option == 'FILE' else option)
    assert len(ds.class_index) == len(ds)
    default_files = os.listdir(tmp_path / 'default') if (tmp_path / 'default').exists() else []
    assert bool(default_files) == (expected == 'default')
    assert osp.isfile(path) == (expected == 'file')


def test_bad_class_index_cache_and_max_refetch_are_clear(digit_scenes, tmp_path):
    for bad in (3, 1.5, ''):
        with pytest.raises(ValueError, match='class_index_cache must be'):
            seg_pairs(digit_scenes, class_index_cache=bad)
    with pytest.raises(ValueError, match='is a directory'):
        seg_pairs(digit_scenes, class_index_cache=str(tmp_path))
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]  # no debris
    blocker = tmp_path / 'a_file'
    blocker.write_text('')  # a folder below a file cannot be created
    with pytest.raises(OSError, match='cannot write the class index cache.*class_index_cache'):
        seg_pairs(digit_scenes, class_index_cache=str(blocker / 'cache' / 'index.pkl'))
    with pytest.raises(ValueError, match='max_refetch'):
        seg_pairs(digit_scenes, max_refetch=-1)


def test_excluded_classes_never_pair_and_are_checked(digit_scenes):
    ds = seg_pairs(digit_scenes, swap=dict(exclude_classes=[0]))
    assert all(0 not in c for c in ds.class_index)
    for i in range(len(ds)):
        a, b = ds[i]
        assert 0 not in a['data_samples'].get(CLASSES)
    with pytest.raises(ValueError, match='exclude_classes=.*11 classes'):
        seg_pairs(digit_scenes, swap=dict(exclude_classes=[11]))
    with pytest.raises(ValueError, match=r'exclude_classes=\[0, .*leaves no class'):
        seg_pairs(digit_scenes, swap=dict(exclude_classes=list(range(11))))


def test_label_values_beyond_the_classes_are_named(digit_scenes, tmp_path):
    import shutil
    root = str(tmp_path / 'copy')
    shutil.copytree(digit_scenes, root)
    label = np.zeros((64, 64), np.uint16)
    label[0, 0] = 50
    path = sorted(os.listdir(osp.join(root, 'labels/train')))[0]
    cv2.imwrite(osp.join(root, 'labels/train', path), label)
    with pytest.raises(ValueError, match=r'labels \[50\].*0\.\.10.*ignore_index \(255\)'):
        seg_pairs(root, class_index_cache=False)


@pytest.mark.parametrize('task,wrapper', [  # ClassBalancedDataset is mmdet's (instance labels)
    ('det', 'RepeatDataset'), ('det', 'ConcatDataset'), ('det', 'ClassBalancedDataset'),
    ('seg', 'RepeatDataset'), ('seg', 'ConcatDataset')])
def test_wrapped_datasets_never_pair_an_image_with_its_own_copy(task, wrapper, digit_scenes):
    """mmdet's VOC configs wrap the train set in RepeatDataset; ConcatDataset([ds, ds]) and
    ClassBalancedDataset repeat images too. Every pair is of two different images (by path),
    and still shares a class."""
    if task == 'det':
        init_default_scope('mmdet')
        inner, registry, key = det_dataset_cfg(digit_scenes, DET_LOAD), DET_DATASETS, 'img_path'
        swap = dict(type='IntraClassPatchSwap', box_grid=2, min_cell_size=2)
        pack = 'PackDetInputs'
    else:
        init_default_scope('mmseg')
        inner, registry, key = seg_dataset_cfg(digit_scenes, SEG_LOAD), SEG_DATASETS, 'img_path'
        swap = dict(type='IntraClassPatchSwap', patch_size=8)
        pack = 'PackSegInputs'
    if wrapper == 'RepeatDataset':
        wrapped = dict(type='RepeatDataset', times=3, dataset=inner)
    elif wrapper == 'ConcatDataset':
        wrapped = dict(type='ConcatDataset', datasets=[inner, copy.deepcopy(inner)])
    else:
        wrapped = dict(type='ClassBalancedDataset', oversample_thr=0.5, dataset=inner)
    ds = registry.build(dict(type='IntraClassPairDataset', dataset=wrapped, swap=swap,
                             pipeline=[dict(type=pack)]))
    assert len(ds) > len(np.unique(ds.image_ids))  # the wrapper does repeat images
    rng = np.random.default_rng(0)
    for i in range(len(ds)):
        for _ in range(3):
            j = ds.partner_of(i, rng)
            assert ds.get_data_info(i)[key] != ds.get_data_info(j)[key], (i, j)
            assert set(ds.class_index[i].tolist()) & set(ds.class_index[j].tolist())


def test_a_pair_pipeline_that_drops_boxes_is_refused_with_where_it_belongs(digit_scenes):
    """The instance pairs index the boxes the swap saw: a FilterAnnotations after the swap
    would point them at other boxes (or past the end)."""
    init_default_scope('mmdet')
    ds = DET_DATASETS.build(dict(
        type='IntraClassPairDataset', dataset=det_dataset_cfg(digit_scenes, DET_LOAD),
        swap=dict(type='IntraClassPatchSwap', box_grid=2, min_cell_size=2),
        pipeline=[dict(type='FilterAnnotations', min_gt_bbox_wh=(24, 24)),
                  dict(type='PackDetInputs')]))
    with pytest.raises(ValueError, match=r"changed the (anchor|partner)'s boxes after the swap "
                                         r"\(\d+ -> \d+\).*before the swap"):
        for i in range(len(ds)):
            ds[i]


def test_cells_as_large_as_the_image_are_said_once(digit_scenes):
    from mmengine.logging import MMLogger
    ds = seg_pairs(digit_scenes, swap=dict(patch_size=64))  # the 64x64 scenes: one cell
    logger = MMLogger.get_current_instance()
    said = []
    handler = type('Keep', (__import__('logging').Handler, ), {
        'emit': lambda self, record: said.append(record.getMessage())})()
    logger.addHandler(handler)
    try:
        ds[0], ds[1]
    finally:
        logger.removeHandler(handler)
    warned = [m for m in said if 'at least the image size 64x64' in m]
    assert len(warned) == 1 and 'exchanges whole images' in warned[0]


@pytest.mark.parametrize('wrapper', [None, 'RepeatDataset'])
def test_pipeline_switch_hook_switches_the_inner_pipeline(wrapper, digit_scenes):
    """RTMDet's and YOLOX's configs end training on a lighter pipeline: mmdet's
    PipelineSwitchHook sets train_dataloader.dataset.pipeline. On the pair dataset that whole
    pipeline goes where the config's did: the transforms before the swap to the inner dataset
    (through its wrapper), the packing transform after it."""
    from types import SimpleNamespace

    from mmdet.engine.hooks import PipelineSwitchHook
    from mmengine.logging import MMLogger
    init_default_scope('mmdet')
    inner = det_dataset_cfg(digit_scenes, DET_LOAD)
    if wrapper:
        inner = dict(type=wrapper, times=2, dataset=inner)
    ds = DET_DATASETS.build(dict(
        type='IntraClassPairDataset', dataset=inner,
        swap=dict(type='IntraClassPatchSwap', box_grid=2, min_cell_size=2),
        pipeline=[dict(type='PackDetInputs')]))
    flip = dict(type='RandomFlip', prob=1.0, direction='vertical')
    hook = PipelineSwitchHook(switch_epoch=1, switch_pipeline=[*DET_LOAD, flip,
                                                               dict(type='PackDetInputs')])
    loader = torch.utils.data.DataLoader(ds, batch_size=1, collate_fn=pair_collate)
    runner = SimpleNamespace(epoch=1, train_dataloader=loader,
                             logger=MMLogger.get_current_instance())
    hook.before_train_epoch(runner)
    leaf = ds.dataset.dataset if wrapper else ds.dataset
    assert [type(t).__name__ for t in leaf.pipeline.transforms] == [
        'LoadImageFromFile', 'LoadAnnotations', 'RandomFlip']
    assert [type(t).__name__ for t in ds.pipeline.transforms] == ['PackDetInputs']
    batch = next(iter(loader))
    assert all(s.flip and s.flip_direction == 'vertical' for s in batch['data_samples'])
    assert batch['data_samples'][0].get(INSTANCE_PAIRS) is not None
    with pytest.raises(ValueError, match='must end with PackDetInputs'):
        ds.pipeline = DET_LOAD
    with pytest.raises(ValueError, match="holds IntraClassPatchSwap, which belongs in the pair "
                                         "dataset's 'swap'"):
        ds.pipeline = [*DET_LOAD, dict(type='IntraClassPatchSwap'), dict(type='PackDetInputs')]
