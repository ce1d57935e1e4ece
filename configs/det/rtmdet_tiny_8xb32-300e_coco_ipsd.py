# IPSD on RTMDet-tiny, COCO 2017, 300 epochs, 8 GPUs x 16 pairs (32 images).
# Baseline: mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py
# Its custom_hooks (EMAHook, PipelineSwitchHook) stay, so this config does not take
# ../_base_/ipsd_det.py (two bases may not both set custom_hooks): it adds the same pieces.
_base_ = ['mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py']

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

custom_imports = dict(imports=['ipsd_mm.det'], allow_failed_imports=False)

# The baseline's train dataset in intra-class pairs; batch_size counts pairs (halved). The swap
# runs after CachedMosaic/CachedMixUp, on the instances of the shared class that survive them;
# the pairs left with none are counted as ipsd_empty_pairs. At epoch 280 PipelineSwitchHook
# sets the stage-2 pipeline on the pair dataset, which passes it to the inner dataset.
train_dataloader = pair_train_dataloader(_base_.train_dataloader)

# The hook at its defaults (spelled out in ../_base_/ipsd_det.py; docs/method.md). The term is
# divided by RTMDet's own classification normaliser (the quality-weighted positives).
custom_hooks = [*_base_.custom_hooks, dict(type='IPSDHook')]
