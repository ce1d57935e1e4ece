# IPSD on Mask2Former R50, Cityscapes 512x1024 crops, 90k iterations, 8 GPUs x 1 pair.
# Baseline: mmseg::mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py
# Mask2Former classifies one query per class present: the term distils, per pair and shared
# class, the class logits (with no-object) of the two queries the loss's matching gave that
# class on the last decoder layer. mode must stay 'region' and use_aux False.
_base_ = [
    'mmseg::mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py',
    '../_base_/ipsd_seg.py'
]

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

# The baseline's train dataset in intra-class pairs; batch_size counts pairs (halved).
train_dataloader = pair_train_dataloader(_base_.train_dataloader)
