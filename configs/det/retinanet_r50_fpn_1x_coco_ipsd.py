# IPSD on RetinaNet R50-FPN 1x, COCO 2017, 8 GPUs x 1 pair (2 images).
# Baseline: mmdet::retinanet/retinanet_r50_fpn_1x_coco.py
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/ipsd_det.py']

_train = _base_.train_dataloader
train_dataloader = dict(
    batch_size=_train.batch_size // 2,  # counts pairs: the baseline's images per GPU per step
    collate_fn=dict(type='pair_collate'),
    dataset=dict(
        _delete_=True,
        type='IntraClassPairDataset',
        dataset=dict(_train.dataset, pipeline=_train.dataset.pipeline[:-1]),
        pipeline=[_base_.ipsd_swap, _train.dataset.pipeline[-1]]))
del _train
