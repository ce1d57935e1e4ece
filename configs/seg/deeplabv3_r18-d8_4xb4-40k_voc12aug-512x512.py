# Baseline: DeepLabV3-R18-D8 on Pascal VOC 2012 + aug, 512x512, 40k iterations, 4 GPUs x 4.
# mmseg publishes this schedule for R50/R101 only; this is its R18-D8 variant, made the way
# mmseg makes deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py from its R50 config.
_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-40k_voc12aug-512x512.py'
model = dict(
    pretrained='open-mmlab://resnet18_v1c',
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64))
