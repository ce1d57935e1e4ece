"""Small stand-ins, in the on-disk formats the paper-scale configs read (Cityscapes, Pascal VOC
2012 + aug, COCO 2017), made from DigitScenes scenes."""
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np

from ipsd_mm.testing.digit_scenes import make_digit_scenes


def _scenes(root: str) -> dict:
    make_digit_scenes(root, num_train=4, num_val=2, size=(64, 128), num_digits=(2, 3),
                      scale=(16, 32), seed=1)
    return {split: sorted(os.listdir(osp.join(root, 'images', split))) for split in ('train',
                                                                                   'val')}


def write_cityscapes(src: str, names: dict, root: str) -> None:
    for split, files in names.items():
        for sub in ('leftImg8bit', 'gtFine'):
            os.makedirs(osp.join(root, sub, split, 'digitville'), exist_ok=True)
        for name in files:
            stem = f'digitville_{name[:-4]}'
            shutil.copy(osp.join(src, 'images', split, name),
                        osp.join(root, 'leftImg8bit', split, 'digitville',
                                 f'{stem}_leftImg8bit.png'))
            label = cv2.imread(osp.join(src, 'labels', split, name), cv2.IMREAD_UNCHANGED)
            train_ids = np.where(label == 0, 0, label + 8).astype(np.uint8)  # road + ids 9..18
            cv2.imwrite(osp.join(root, 'gtFine', split, 'digitville',
                                 f'{stem}_gtFine_labelTrainIds.png'), train_ids)


def write_voc(src: str, names: dict, root: str) -> None:
    for sub in ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug',
                'ImageSets/Segmentation'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    lists = {}
    for split, files in names.items():
        for name in files:
            stem = f'{split}_{name[:-4]}'
            img = cv2.imread(osp.join(src, 'images', split, name))
            cv2.imwrite(osp.join(root, 'JPEGImages', stem + '.jpg'), img)
            label = cv2.imread(osp.join(src, 'labels', split, name), cv2.IMREAD_UNCHANGED)
            for sub in ('SegmentationClass', 'SegmentationClassAug'):
                cv2.imwrite(osp.join(root, sub, stem + '.png'), label)  # VOC ids 0..10
            lists.setdefault(split, []).append(stem)
    lists['aug'] = lists['train']
    for split, stems in lists.items():
        with open(osp.join(root, 'ImageSets/Segmentation', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(stems) + '\n')


def write_coco(src: str, names: dict, root: str) -> None:
    from mmdet.datasets import CocoDataset
    coco_names = CocoDataset.METAINFO['classes']
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    for split in names:
        os.makedirs(osp.join(root, f'{split}2017'), exist_ok=True)
        with open(osp.join(src, 'annotations', f'{split}.json')) as f:
            coco = json.load(f)
        for image in coco['images']:
            img = cv2.imread(osp.join(src, 'images', split, image['file_name']))
            image['file_name'] = image['file_name'][:-4] + '.jpg'
            cv2.imwrite(osp.join(root, f'{split}2017', image['file_name']), img)
        # Digits stand in for the first ten COCO classes; all 80 are declared, so that the
        # evaluator can name whatever class an untrained model predicts.
        coco['categories'] = [dict(id=k + 1, name=name) for k, name in enumerate(coco_names)]
        with open(osp.join(root, 'annotations', f'instances_{split}2017.json'), 'w') as f:
            json.dump(coco, f)


def write_standins(root: str) -> dict:
    """Writes all three; returns their data roots by dataset type."""
    src = osp.join(root, 'digit_scenes')
    names = _scenes(src)
    roots = dict(CityscapesDataset=osp.join(root, 'cityscapes'),
                 PascalVOCDataset=osp.join(root, 'VOCdevkit', 'VOC2012'),
                 CocoDataset=osp.join(root, 'coco'))
    write_cityscapes(src, names, roots['CityscapesDataset'])
    write_voc(src, names, roots['PascalVOCDataset'])
    write_coco(src, names, roots['CocoDataset'])
    return roots
