"""Train a detector or a segmentor: the familiar mmdet/mmseg command line, for baseline and IPSD
configs alike.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ipsd_mm.compat import setup_cpu_distributed  # importing ipsd_mm also applies compat


def parse_common_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The options train.py and test.py share (work dir, overrides, launcher), then parse."""
    parser.add_argument('--work-dir', help='the dir to save logs, models and metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value (e.g. train_cfg.max_iters=100 '
        'train_dataloader.dataset.swap.patch_size=32 custom_hooks.0.loss_weight=0.5)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector or a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a path from the latest one in work-dir')
    return parse_common_args(parser)


def build_runner(cfg: Config):
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def load_config(args) -> Config:
    """The config with what train.py and test.py share on the command line: the launcher,
    --cfg-options and the work dir (default ./work_dirs/CONFIG_NAME)."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def main():
    args = parse_args()
    cfg = load_config(args)
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise SystemExit('--amp needs a GPU: MMEngine\'s AmpOptimWrapper runs on CUDA only')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    setup_cpu_distributed(cfg, args.launcher)
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
