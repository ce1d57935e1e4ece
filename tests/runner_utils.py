"""Demo configs shrunk to a few CPU iterations on a test's own DigitScenes."""
import os.path as osp

from mmengine.config import Config

from ipsd_mm.testing.digit_configs import point_to

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')


def tiny_cfg(config: str, root: str, work_dir: str, iters: int = 2, batch: int = 2) -> Config:
    """``config`` (relative to configs/) for ``iters`` iterations of ``batch`` train items,
    no workers, evaluation at the end, a checkpoint every ``iters`` iterations."""
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    point_to(cfg._cfg_dict, root)
    cfg.work_dir = work_dir
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.train_dataloader.batch_size = batch
    cfg.val_dataloader.batch_size = cfg.test_dataloader.batch_size = 4
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 1
    cfg.param_scheduler = []
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.log_level = 'WARNING'
    return cfg
