"""Evaluate a trained detector or segmentor from a checkpoint.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]
                                           [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import os

from mmengine.config import DictAction

from ipsd_mm.compat import setup_cpu_distributed
from train import build_runner, load_config


def parse_args():
    parser = argparse.ArgumentParser(description='Test a detector or a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    setup_cpu_distributed(cfg, args.launcher)
    build_runner(cfg).test()


if __name__ == '__main__':
    main()
