# Accuracy-study teacher: the study's Faster R-CNN at four times its width (ResNet-18 with 64 base
# channels, 128-channel FPN, RPN and RoI features, 256-unit box head), the same data, pipeline and
# schedule (tools/accuracy_study.py, variant teacher; pretrained start: resnet18-w64).
_base_ = ['./faster-rcnn_r18-w16_fpn_digit-scenes.py']
model = dict(
    backbone=dict(base_channels=64),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128),
    rpn_head=dict(in_channels=128, feat_channels=128),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=128),
                  bbox_head=dict(in_channels=128, fc_out_channels=256)))
