# IPSD on DINO-4scale R50, COCO 2017, 12 epochs, 8 GPUs x 1 pair (2 images).
# Baseline: mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py
# The term distils the class logits of the queries the Hungarian matcher gave the two
# instances of a pair on the last decoder layer (read from the loss's own matching).
_base_ = ['mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', '../_base_/ipsd_det.py']

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

# The baseline's train dataset in intra-class pairs; batch_size counts pairs (halved).
train_dataloader = pair_train_dataloader(_base_.train_dataloader)
