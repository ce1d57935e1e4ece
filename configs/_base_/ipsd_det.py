# The IPSD pieces for an mmdet config. An IPSD experiment inherits its baseline and this file,
# then wraps the baseline's train dataset with ipsd_mm.config_utils.pair_train_dataloader, whose
# keywords set IntraClassPatchSwap's options (see configs/det/*_ipsd.py and docs/method.md).
# Change them from a child config or the command line like any key:
#   --cfg-options train_dataloader.dataset.swap.box_grid=1 custom_hooks.0.loss_weight=0.5
custom_imports = dict(imports=['ipsd_mm.det'], allow_failed_imports=False)

custom_hooks = [
    dict(
        type='IPSDHook',
        loss_weight=1.0,  # 1: a distilled instance weighs what one element of loss_cls weighs
        temperature=4.0,
        gate='none',  # 'argmax' / 'threshold': distil only where the teacher is right
        gate_threshold=0.5,
        warmup_iters=0)
]
