# Demo IPSD: the baseline above plus the IPSD pieces, at the same images per step.
_base_ = ['./deeplabv3_r18-d8_digit-scenes.py', '../_base_/ipsd_seg.py']

_train = _base_.train_dataloader
train_dataloader = dict(
    batch_size=_train.batch_size // 2,  # counts pairs: the baseline's images per step
    collate_fn=dict(type='pair_collate'),
    dataset=dict(
        _delete_=True,
        type='IntraClassPairDataset',
        dataset=dict(_train.dataset, pipeline=_train.dataset.pipeline[:-1]),
        pipeline=[dict(_base_.ipsd_swap, patch_size=16), _train.dataset.pipeline[-1]]))
del _train
