# The IPSD pieces for an mmdet config. An IPSD experiment inherits its baseline and this file,
# then wraps the baseline's train dataset (see configs/det/*_ipsd.py).
custom_imports = dict(imports=['ipsd_mm'], allow_failed_imports=False)

# First transform of IntraClassPairDataset's pipeline (the packing transform follows).
ipsd_swap = dict(
    type='IntraClassPatchSwap',
    box_grid=4,  # cells per matched box, (rows, cols)
    swap_ratio=(0.25, 0.5),  # fraction of a matched box's cells swapped, drawn per box pair
    prob=1.0,
    min_cell_size=4,  # boxes with smaller cells stay matched but are not swapped
    max_pairs=16)

custom_hooks = [dict(type='IPSDHook', loss_weight=1.0, temperature=4.0, warmup_iters=0)]
