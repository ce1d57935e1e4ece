"""Train a detector or a segmentor: the familiar mmdet/mmseg command line, for baseline and IPSD
configs alike.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse

from ipsd_mm.cli import build_runner, load_config, parse_common_args
from ipsd_mm.compat import setup_cpu_distributed  # importing ipsd_mm also applies compat


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector or a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a path from the latest one in work-dir')
    return parse_common_args(parser)


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
