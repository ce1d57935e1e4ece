"""Synthetic inputs shared by the benchmark and the tests: blocky label maps, and a training
batch of pairs (pair metadata stamped) that any mmseg segmentor or mmdet detector accepts."""
from typing import Optional

import numpy as np


def blocky(rng: np.random.Generator, h: int, w: int, classes: int, block: int,
           ignore: float = 0.0, ignore_index: int = 255) -> np.ndarray:
    """A uint8 label map made of ``block``-pixel squares of random classes (so whole cells of
    one class exist), with a fraction ``ignore`` of pixels set to ``ignore_index``."""
    coarse = rng.integers(0, classes, (-(-h // block), -(-w // block)))
    labels = np.kron(coarse, np.ones((block, block), np.int64))[:h, :w].astype(np.uint8)
    if ignore:
        labels[rng.random((h, w)) < ignore] = ignore_index
    return labels


def pair_batch(task: str, images: int, size, seed: int = 0, classes: Optional[list] = None,
               block: int = 32):
    """``images`` (even) samples in pairs, as ``pair_collate`` delivers them: segmentation
    samples with blocky label maps, detection samples with four boxes of labels 0, 1, 2, 1
    where instances 0 and 1 of the anchor match instances 0 and 3 of the partner."""
    import torch
    from mmengine.structures import InstanceData, PixelData

    from ..pair_meta import CLASSES, INSTANCE_PAIRS, PAIR_ID, ROLE
    rng = np.random.default_rng(seed)
    h, w = size
    samples = []
    for k in range(images):
        if task == 'seg':
            from mmseg.structures import SegDataSample
            sample = SegDataSample(gt_sem_seg=PixelData(data=torch.from_numpy(
                blocky(rng, h, w, 4, block)).long()[None]))
        else:
            from mmdet.structures import DetDataSample
            xy = rng.uniform(0, 0.6, (4, 2)) * [w, h]
            wh = rng.uniform(0.15, 0.35, (4, 2)) * [w, h]
            sample = DetDataSample(gt_instances=InstanceData(
                bboxes=torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float32),
                labels=torch.tensor([0, 1, 2, 1])))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                 batch_input_shape=(h, w), scale_factor=(1.0, 1.0),
                                 **{PAIR_ID: k // 2, ROLE: k % 2,
                                    CLASSES: classes if classes is not None else [0, 1, 2, 3],
                                    INSTANCE_PAIRS: [(0, 0), (1, 3)]}))
        samples.append(sample)
    inputs = [torch.randint(0, 255, (3, h, w), dtype=torch.uint8) for _ in range(images)]
    return dict(inputs=inputs, data_samples=samples)


def for_cpu(node) -> None:
    """In place: no pretrained weights (nothing is downloaded) and plain BN for SyncBN, all
    through a config (dict/list tree)."""
    if isinstance(node, dict):
        node.pop('pretrained', None)
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for key in list(node):
            value = node[key]
            if key == 'init_cfg' and isinstance(value, dict) and value.get('type') == 'Pretrained':
                node[key] = None
            else:
                for_cpu(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            for_cpu(value)
