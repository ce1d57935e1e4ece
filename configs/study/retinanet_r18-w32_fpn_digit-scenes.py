# Accuracy-study teacher: the study's RetinaNet at twice its width (ResNet-18 with 32 base
# channels, 64-channel FPN and head), the same data, pipeline and schedule.
# tools/accuracy_study.py trains it once per data set and start (variant ``teacher``) for the
# teacher-KD control; its pretrained start is resnet18-w32 (tools/pretrain_backbone.py).
_base_ = ['./retinanet_r18-w16_fpn_digit-scenes.py']
model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    bbox_head=dict(in_channels=64, feat_channels=64))
