# The IPSD pieces for an mmseg config. An IPSD experiment inherits its baseline and this file,
# then wraps the baseline's train dataset with ipsd_mm.config_utils.pair_train_dataloader, whose
# keywords set IntraClassPatchSwap's options (see configs/seg/*_ipsd.py and docs/method.md).
# Change them from a child config or the command line like any key:
#   --cfg-options train_dataloader.dataset.swap.patch_size=32 custom_hooks.0.loss_weight=0.5
custom_imports = dict(imports=['ipsd_mm.seg'], allow_failed_imports=False)

custom_hooks = [
    dict(
        type='IPSDHook',
        loss_weight=1.0,  # 1: a distilled pixel weighs what a pixel of the decode CE weighs
        temperature=4.0,
        gate='none',  # 'argmax' / 'threshold': distil only where the teacher is right
        gate_threshold=0.5,
        mode='region',
        warmup_iters=0)
]
