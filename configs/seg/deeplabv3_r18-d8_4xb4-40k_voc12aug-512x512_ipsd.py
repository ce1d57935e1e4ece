# IPSD on DeepLabV3-R18-D8, Pascal VOC 2012 + aug 512x512, 40k iterations, 4 GPUs x 2 pairs.
# Baseline: ./deeplabv3_r18-d8_4xb4-40k_voc12aug-512x512.py
_base_ = ['./deeplabv3_r18-d8_4xb4-40k_voc12aug-512x512.py', '../_base_/ipsd_seg.py']

# VOC aug is a ConcatDataset of the train and aug splits: each loses its packing step.
_train = _base_.train_dataloader
_datasets = [dict(d, pipeline=d.pipeline[:-1]) for d in _train.dataset.datasets]
train_dataloader = dict(
    batch_size=_train.batch_size // 2,  # counts pairs: the baseline's images per GPU per step
    collate_fn=dict(type='pair_collate'),
    dataset=dict(
        _delete_=True,
        type='IntraClassPairDataset',
        dataset=dict(type='ConcatDataset', datasets=_datasets),
        pipeline=[_base_.ipsd_swap, _train.dataset.datasets[0].pipeline[-1]]))
del _train, _datasets
