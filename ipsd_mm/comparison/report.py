"""The report of a comparison of any config: per variant the final metric per seed, mean ± std
and the paired difference to the baseline with its 95% interval, and the validation curves."""
import os
import os.path as osp
from typing import Optional

import numpy as np

from .records import (baselines_of, diff_cell, group_by, machine_id, new_table, paired_diffs,
                      spread_cell)

#: the val metrics a table shows by default, first found first (mmseg, mmdet, mmpretrain)
DEFAULT_METRICS = ('mIoU', 'coco/bbox_mAP', 'coco/segm_mAP', 'pascal_voc/mAP', 'accuracy/top1')


def pick_metric(records: list, metric: Optional[str] = None) -> str:
    keys = [k for r in records for k in r['final']]
    if metric:
        if metric not in keys:
            raise ValueError(f'--metric {metric}: not among the runs\' validation metrics '
                             f'{sorted(set(keys))}')
        return metric
    for name in DEFAULT_METRICS:
        if name in keys:
            return name
    if not keys:
        raise ValueError('no run has a validation metric yet (is val_cfg set, and does the '
                         "config's visualizer keep LocalVisBackend?)")
    return keys[0]


def compare_table(records: list, metric: str, baseline: str = 'baseline',
                  markdown: bool = False) -> str:
    """Per variant: the final ``metric`` per seed, mean ± std, and the paired difference to
    ``baseline`` (same seed and machine) with its 95% t-interval."""
    scale = metric_scale(records, metric)
    measured = [r for r in records if metric in r['final']]
    by_variant = group_by(measured, lambda r: r['variant'])

    def pair(r):
        return r['seed'], machine_id(r['machine'])

    def value(r):
        return scale * r['final'][metric]
    base = baselines_of(measured, pair, value, lambda r: r['variant'] == baseline)
    shown = f'{metric} (x100)' if scale == 100 else metric
    table = new_table(['variant', 'seeds', f'{shown} per seed', 'mean ± std',
                       f'paired diff to {baseline} [95% CI]', 'config'], markdown)
    for variant in sorted(by_variant, key=lambda v: (v != baseline, v)):
        runs = sorted(by_variant[variant], key=lambda r: r['seed'])
        values = [value(r) for r in runs]
        configs = sorted({osp.basename(r['config']) for r in runs})
        table.add_row([variant, ' '.join(str(r['seed']) for r in runs),
                       ' '.join(f'{v:.2f}' for v in values), spread_cell(values),
                       '' if variant == baseline else diff_cell(paired_diffs(runs, base, pair,
                                                                             value)),
                       ' '.join(configs)])
    return str(table)


def metric_scale(records: list, metric: str) -> int:
    """100 for a metric reported as a fraction (mmdet's COCO mAP: 0..1), so that tables and
    plots read in points as mmseg's mIoU does; else 1."""
    values = [abs(v) for r in records for _, m in r['curve'] for k, v in m.items() if k == metric]
    return 100 if values and max(values) <= 1 else 1


def plot_curves(records: list, metric: str, path: str) -> str:
    """The validation curve of each variant: the mean over seeds, the band from the lowest to
    the highest seed (so a variant that only climbs faster shows as such)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    scale = metric_scale(records, metric)
    for variant, runs in sorted(group_by(records, lambda r: r['variant']).items()):
        steps = sorted({s for r in runs for s, m in r['curve'] if metric in m})
        table = np.full((len(runs), len(steps)), np.nan)
        for i, r in enumerate(runs):
            for s, m in r['curve']:
                if metric in m:
                    table[i, steps.index(s)] = scale * m[metric]
        if not steps:
            continue
        mean = np.nanmean(table, 0)
        line, = ax.plot(steps, mean, marker='o', label=f'{variant} ({len(runs)} seeds)')
        ax.fill_between(steps, np.nanmin(table, 0), np.nanmax(table, 0), alpha=0.2,
                        color=line.get_color())
    ax.set_xlabel('iteration (or epoch)')
    ax.set_ylabel(f'{metric} (x100)' if scale == 100 else metric)
    ax.set_title(f'{metric} on val: mean over seeds, band from lowest to highest seed')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


