# Accuracy-study teacher: the study's DeepLabV3 at twice its width (ResNet-18-D8 with 32 base
# channels, decode and auxiliary heads doubled), the same data, pipeline and schedule.
# tools/accuracy_study.py trains it once per data set and start (variant ``teacher``) for the
# teacher-KD control; its pretrained start is resnet18v1c-w32 (tools/pretrain_backbone.py).
_base_ = ['./deeplabv3_r18-d8-w16_digit-scenes.py']
model = dict(
    backbone=dict(base_channels=32, stem_channels=32),
    decode_head=dict(in_channels=256, channels=64),
    auxiliary_head=dict(in_channels=128, channels=32))
