# The IPSD pieces for an mmseg config. An IPSD experiment inherits its baseline and this file,
# then wraps the baseline's train dataset (see configs/seg/*_ipsd.py).
custom_imports = dict(imports=['ipsd_mm'], allow_failed_imports=False)

# First transform of IntraClassPairDataset's pipeline (the packing transform follows).
ipsd_swap = dict(
    type='IntraClassPatchSwap',
    patch_size=64,  # cell size in pixels
    swap_ratio=(0.25, 0.5),  # fraction of the eligible cells swapped, drawn per pair
    prob=1.0,
    min_class_fraction=0.5,  # a cell's class must cover this much of it, in both images
    ignore_index=255)

custom_hooks = [
    dict(type='IPSDHook', loss_weight=1.0, temperature=4.0, mode='region', warmup_iters=0)
]
