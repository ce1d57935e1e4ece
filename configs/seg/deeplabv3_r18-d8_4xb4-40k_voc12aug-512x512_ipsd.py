# IPSD on DeepLabV3-R18-D8, Pascal VOC 2012 + aug 512x512, 40k iterations, 4 GPUs x 2 pairs.
# Baseline: ./deeplabv3_r18-d8_4xb4-40k_voc12aug-512x512.py
_base_ = ['./deeplabv3_r18-d8_4xb4-40k_voc12aug-512x512.py', '../_base_/ipsd_seg.py']

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

# The baseline's train dataset (a ConcatDataset of the train and aug splits) in intra-class
# pairs; batch_size counts pairs (halved).
# VOC's class 0 is background, not an object: it never pairs, swaps or distils.
train_dataloader = pair_train_dataloader(_base_.train_dataloader, exclude_classes=[0])
