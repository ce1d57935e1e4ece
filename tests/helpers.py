"""What several test files share: dataset configs on a test's own DigitScenes."""
from ipsd_mm.testing.digit_scenes import CLASSES, SEG_CLASSES


def seg_dataset_cfg(root, pipeline):
    return dict(type='BaseSegDataset', data_root=root, metainfo=dict(classes=SEG_CLASSES),
                data_prefix=dict(img_path='images/train', seg_map_path='labels/train'),
                img_suffix='.png', seg_map_suffix='.png', pipeline=pipeline)


def det_dataset_cfg(root, pipeline):
    return dict(type='CocoDataset', data_root=root, metainfo=dict(classes=CLASSES),
                ann_file='annotations/train.json', data_prefix=dict(img='images/train/'),
                pipeline=pipeline, filter_cfg=dict(filter_empty_gt=True))
