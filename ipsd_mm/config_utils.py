"""Config helpers: what every IPSD config does to its baseline, written once.

Used from a config file, after its ``_base_`` line::

    _base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '../_base_/ipsd_det.py']
    from ipsd_mm.config_utils import pair_train_dataloader
    train_dataloader = pair_train_dataloader(_base_.train_dataloader, box_grid=2)

The swap's options end up in ``train_dataloader.dataset.swap``, where a child config or
``--cfg-options train_dataloader.dataset.swap.box_grid=1`` changes them like any other key.
"""
import copy
from typing import List


def _leaf_datasets(dataset: dict) -> List[dict]:
    """The datasets that load samples (those with a pipeline), through wrappers such as
    ``ConcatDataset`` (``datasets``) and ``RepeatDataset`` (``dataset``)."""
    if 'pipeline' in dataset:
        return [dataset]
    if 'datasets' in dataset:
        return [leaf for d in dataset['datasets'] for leaf in _leaf_datasets(d)]
    if 'dataset' in dataset:
        return _leaf_datasets(dataset['dataset'])
    raise ValueError(f"pair_train_dataloader: the train dataset {dataset.get('type')} has no "
                     "'pipeline', 'datasets' or 'dataset' to take the packing transform from")


def pair_train_dataloader(baseline: dict, **swap_options) -> dict:
    """The baseline's train dataloader, made IPSD.

    Its dataset is wrapped in ``IntraClassPairDataset`` with
    ``swap=dict(type='IntraClassPatchSwap', **swap_options)`` (options not given keep the
    transform's defaults): the packing transform moves from the end of the dataset's pipeline
    (of every dataset inside a ``ConcatDataset``/``RepeatDataset``) to the pair pipeline.
    ``collate_fn`` becomes ``pair_collate``, and ``batch_size``, which now counts pairs, is
    halved so that a step sees the baseline's images (a baseline of one image per GPU gets one
    pair: two images).
    """
    if 'type' in swap_options:
        raise ValueError('pair_train_dataloader: pass the options of IntraClassPatchSwap as '
                         f"keywords, without 'type' (got type={swap_options['type']!r})")
    dataset = copy.deepcopy(baseline['dataset'])
    packs = [leaf['pipeline'].pop() for leaf in _leaf_datasets(dataset)]
    if any(p != packs[0] for p in packs) or not str(packs[0].get('type', '')).startswith('Pack'):
        raise ValueError('pair_train_dataloader: every train pipeline must end with the same '
                         f'packing transform (PackDetInputs/PackSegInputs), got {packs}')
    return dict(
        batch_size=max(1, baseline['batch_size'] // 2),
        collate_fn=dict(type='pair_collate'),
        dataset=dict(_delete_=True, type='IntraClassPairDataset', dataset=dataset,
                     swap=dict(type='IntraClassPatchSwap', **swap_options),
                     pipeline=[packs[0]]))
