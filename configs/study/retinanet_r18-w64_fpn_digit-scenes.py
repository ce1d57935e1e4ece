# Accuracy-study teacher at four times the student's width (ResNet-18 with 64 base channels,
# 128-channel FPN and head): the wider teacher of the positive control's last regime.
_base_ = ['./retinanet_r18-w16_fpn_digit-scenes.py']
model = dict(
    backbone=dict(base_channels=64),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128),
    bbox_head=dict(in_channels=128, feat_channels=128))
