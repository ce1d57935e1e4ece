# IPSD on PSPNet-R18-D8, Cityscapes 512x1024, 80k iterations, 4 GPUs x 1 pair (2 images).
# Baseline: mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py
_base_ = [
    'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py', '../_base_/ipsd_seg.py'
]

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
