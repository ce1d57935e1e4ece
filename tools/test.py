"""Evaluate a trained detector or segmentor from a checkpoint.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]
                                           [--launcher none|pytorch|slurm|mpi]
"""
import argparse

from ipsd_mm.compat import setup_cpu_distributed
from ipsd_mm.cli import build_runner, load_config, parse_common_args


def parse_args():
    parser = argparse.ArgumentParser(description='Test a detector or a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    return parse_common_args(parser)


def main():
    args = parse_args()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    setup_cpu_distributed(cfg, args.launcher)
    build_runner(cfg).test()


if __name__ == '__main__':
    main()
