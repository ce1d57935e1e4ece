# Accuracy-study teacher: the study's Faster R-CNN at twice its width (ResNet-18 with 32 base
# channels, 64-channel FPN, RPN and RoI features, 128-unit box head), the same data, pipeline and
# schedule (tools/accuracy_study.py, variant teacher; pretrained start: resnet18-w32).
_base_ = ['./faster-rcnn_r18-w16_fpn_digit-scenes.py']
model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=64),
                  bbox_head=dict(in_channels=64, fc_out_channels=128)))
