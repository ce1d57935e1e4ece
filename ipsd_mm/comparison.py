"""Paired comparisons of training variants over seeds: the engine behind ``tools/compare.py``
(any config) and ``tools/accuracy_study.py`` (the DigitScenes study).

What is here is written once for both: the machine a number depends on, the results file (one
JSON record per finished run, appended as it finishes, so that nothing is lost with a machine),
pairing a variant with the baseline of the same seed and machine, the 95% t-interval of the
paired differences, the table cells, and for any config the run itself (one ``tools/train.py``
process, or ``torch.distributed.run`` on N processes), its validation curve read from what the
Runner writes, the derived IPSD config and the plot of the curves.
"""
import json
import os
import os.path as osp
import platform
import subprocess
import sys
from glob import glob
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

#: the val metrics a table shows by default, first found first (mmseg, mmdet, mmpretrain)
DEFAULT_METRICS = ('mIoU', 'coco/bbox_mAP', 'coco/segm_mAP', 'pascal_voc/mAP', 'accuracy/top1')


# -- what a number depends on ---------------------------------------------------------------

def machine(threads: Optional[int] = 1) -> dict:
    """What a result's numbers depend on besides the seed: the CPU model and the torch build
    (its kernels), the threads per run, and the GPU when there is one."""
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    out = dict(cpu=cpu, torch=torch.__version__, threads=threads)
    if threads is None and torch.cuda.is_available():
        out['gpu'] = torch.cuda.get_device_name(0)
    return out


def machine_id(m: dict) -> str:
    gpu = f" | {m['gpu']}" if m.get('gpu') else ''
    threads = f" | {m['threads']} thread(s)" if m.get('threads') is not None else ''
    return f"{m['cpu']} | torch {m['torch']}{threads}{gpu}"


# -- the results file -------------------------------------------------------------------------

def load_records(path: str) -> list:
    if not osp.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def append_record(path: str, record: dict) -> None:
    """One line per finished run, appended at once, so an interrupted comparison keeps it."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'a') as f:
        f.write(json.dumps(record) + '\n')


# -- pairing, intervals, tables -----------------------------------------------------------------

def t_interval(diffs: np.ndarray) -> tuple:
    """Mean and 95% Student-t interval of paired differences (None without two of them)."""
    diffs = np.asarray(diffs, dtype=float)
    if len(diffs) < 2:
        return float(diffs.mean()), None
    from scipy import stats
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs))
    return float(diffs.mean()), (float(diffs.mean() - half), float(diffs.mean() + half))


def diff_cell(diffs: Sequence[float]) -> str:
    """``+0.52 [-0.51, +1.55] (n=5)``: the mean paired difference, its 95% t-interval where
    there are two pairs or more, and how many pairs; empty without pairs."""
    if not len(diffs):
        return ''
    mean, ci = t_interval(np.asarray(diffs))
    return f'{mean:+.2f}' + (f' [{ci[0]:+.2f}, {ci[1]:+.2f}]' if ci else '') + f' (n={len(diffs)})'


def spread_cell(values: Sequence[float]) -> str:
    """``51.55 ± 0.56``: mean and sample standard deviation (no ± for one value)."""
    values = np.asarray(values, dtype=float)
    std = f' ± {values.std(ddof=1):.2f}' if len(values) > 1 else ''
    return f'{values.mean():.2f}{std}'


def new_table(columns: Sequence[str], markdown: bool = False):
    """A left-aligned PrettyTable, as Markdown when asked."""
    from prettytable import PrettyTable
    table = PrettyTable(list(columns))
    table.align = 'l'
    if markdown:
        import prettytable  # TableStyle from 3.12 on; MARKDOWN before
        table.set_style(getattr(prettytable, 'TableStyle', prettytable).MARKDOWN)
    return table


# -- runs of any config (tools/compare.py) -------------------------------------------------------

def run_name(variant: str, seed: int) -> str:
    return f'{variant}_s{seed}'


def run_key(record: dict) -> tuple:
    """What makes two runs the same run: variant, config, seed and options (not the machine:
    a comparison's work dir is of one machine or one cluster)."""
    return (record['variant'], record['config'], record['seed'],
            json.dumps(record.get('cfg_options', {}), sort_keys=True))


def claim_run_dir(work_dir: str, config: str, seed: int, cfg_options: dict) -> None:
    """Mark ``work_dir`` as the run of (config, seed, options), or refuse one that another run
    started: a run resumes from its work dir's last checkpoint, which must be its own."""
    marker = osp.join(work_dir, 'compare_run.json')
    mine = dict(config=osp.abspath(config), seed=seed, cfg_options=cfg_options)
    if osp.isfile(marker):
        with open(marker) as f:
            theirs = json.load(f)
        if json.loads(json.dumps(mine)) != theirs:
            raise ValueError(f'{work_dir} holds a run started with {theirs}, not {mine}: its '
                             'checkpoints are not this run\'s; use another --work-dir (or '
                             'delete that run dir)')
        return
    os.makedirs(work_dir, exist_ok=True)
    with open(marker, 'w') as f:
        json.dump(mine, f)


def train_command(config: str, work_dir: str, seed: int, cfg_options: dict, nproc: int = 1,
                  resume: bool = False, python: str = sys.executable,
                  port: Optional[int] = None) -> List[str]:
    """The package's own training entry (``tools/train.py``) for one run: one process, or
    ``torch.distributed.run`` on ``nproc`` (GPUs, or CPU processes with gloo)."""
    train = osp.join(_tools_dir(), 'train.py')
    options = [f'{k}={_option_text(v)}' for k, v in
               dict(cfg_options, **{'randomness.seed': seed}).items()]
    args = [config, '--work-dir', work_dir, '--cfg-options', *options]
    if resume:
        args.append('--resume')
    if nproc <= 1:
        return [python, train] + args
    return [python, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
            f'--master_port={port or 29500}', train] + args + ['--launcher', 'pytorch']


def _option_text(value) -> str:
    """A --cfg-options value as DictAction reads it back (lists and tuples without spaces)."""
    if isinstance(value, (list, tuple)):
        inner = ','.join(_option_text(v) for v in value)
        return f'[{inner}]' if isinstance(value, list) else f'({inner})'
    return str(value)


def _tools_dir() -> str:
    """``tools/`` of the repository, or of the installed package (``ipsd_mm/.mim/tools``)."""
    here = osp.dirname(osp.realpath(__file__))
    for path in (osp.join(osp.dirname(here), 'tools'), osp.join(here, '.mim', 'tools')):
        if osp.isfile(osp.join(path, 'train.py')):
            return path
    raise FileNotFoundError('ipsd_mm: tools/train.py not found beside the package')


def read_curve(work_dir: str) -> List[Tuple[int, Dict[str, float]]]:
    """Every validation of a run, ``[(iteration or epoch, {metric: value})]``, from the
    scalars MMEngine's ``LocalVisBackend`` writes (``<work_dir>/<timestamp>/vis_data/
    scalars.json``; a resumed run adds a timestamp, the later value of a step wins)."""
    curve: Dict[int, Dict[str, float]] = {}
    for path in sorted(glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                if 'lr' in entry or 'step' not in entry:  # a training line
                    continue
                step = int(entry.pop('step'))
                curve[step] = {k: float(v) for k, v in entry.items()
                               if isinstance(v, (int, float)) and k not in ('time', 'data_time')}
    return sorted(curve.items())


def finished(work_dir: str, config: str, cfg_options: dict) -> bool:
    """The run wrote the checkpoint of its last iteration (or epoch) and has a validation."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(cfg_options)
    loop = cfg.train_cfg
    last = (f"iter_{loop['max_iters']}.pth" if 'max_iters' in loop
            else f"epoch_{loop.get('max_epochs')}.pth")
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer) or not read_curve(work_dir):
        return False
    with open(pointer) as f:
        return osp.basename(f.read().strip()) == last


def record_of(variant: str, config: str, seed: int, cfg_options: dict, work_dir: str,
              where: dict, nproc: int = 1) -> dict:
    curve = read_curve(work_dir)
    return dict(variant=variant, config=config, seed=seed, cfg_options=cfg_options,
                work_dir=work_dir, nproc=nproc, machine=where,
                curve=[[step, metrics] for step, metrics in curve],
                final=curve[-1][1] if curve else {})


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
    by_variant: Dict[str, list] = {}
    for r in records:
        by_variant.setdefault(r['variant'], []).append(r)
    scale = metric_scale(records, metric)
    base = {(r['seed'], machine_id(r['machine'])): scale * r['final'][metric]
            for r in by_variant.get(baseline, []) if metric in r['final']}
    shown = f'{metric} (x100)' if scale == 100 else metric
    table = new_table(['variant', 'seeds', f'{shown} per seed', 'mean ± std',
                       f'paired diff to {baseline} [95% CI]', 'config'], markdown)
    order = sorted(by_variant, key=lambda v: (v != baseline, v))
    for variant in order:
        runs = sorted(by_variant[variant], key=lambda r: r['seed'])
        runs = [r for r in runs if metric in r['final']]
        if not runs:
            continue
        values = [scale * r['final'][metric] for r in runs]
        diffs = [v - base[(r['seed'], machine_id(r['machine']))] for v, r in zip(values, runs)
                 if (r['seed'], machine_id(r['machine'])) in base]
        configs = sorted({osp.basename(r['config']) for r in runs})
        table.add_row([variant, ' '.join(str(r['seed']) for r in runs),
                       ' '.join(f'{v:.2f}' for v in values), spread_cell(values),
                       '' if variant == baseline else diff_cell(diffs), ' '.join(configs)])
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
    by_variant: Dict[str, list] = {}
    for r in records:
        by_variant.setdefault(r['variant'], []).append(r)
    for variant, runs in sorted(by_variant.items()):
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


def derive_ipsd(baseline: str, out: str, swap: Optional[dict] = None,
                hook: Optional[dict] = None) -> str:
    """Write the IPSD config of ``baseline`` to ``out``, made as ``configs/*/..._ipsd.py``
    are: the baseline, the IPSD pieces of its library (``ipsd_mm.seg`` or ``ipsd_mm.det``, by
    its ``default_scope``), its train dataset in intra-class pairs (``swap``: the swap's
    options) and ``IPSDHook`` (``hook``: its options) after the baseline's own hooks."""
    from mmengine.config import Config
    cfg = Config.fromfile(baseline)
    scope = cfg.get('default_scope')
    if scope not in ('mmseg', 'mmdet'):
        raise ValueError(f'{baseline}: default_scope is {scope!r}; an IPSD config is derived '
                         "from an mmseg or mmdet config (default_scope 'mmseg' or 'mmdet')")
    side = 'seg' if scope == 'mmseg' else 'det'
    hooks = [h.to_dict() if hasattr(h, 'to_dict') else dict(h)
             for h in cfg.get('custom_hooks', [])] + [dict(type='IPSDHook', **(hook or {}))]
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        f.write(f'''# IPSD derived from {baseline} by ipsd_mm.comparison.derive_ipsd
_base_ = [{osp.abspath(baseline)!r}]
custom_imports = dict(imports=['ipsd_mm.{side}'], allow_failed_imports=False)

from ipsd_mm.config_utils import pair_train_dataloader  # noqa: E402

train_dataloader = pair_train_dataloader(_base_.train_dataloader, **{dict(swap or {})!r})
custom_hooks = {hooks!r}
''')
    Config.fromfile(out)  # fails here, naming the option, rather than in every run
    return out


def run_logged(command: List[str], log_file: str, env: Optional[dict] = None) -> int:
    """Run ``command`` with its output in ``log_file`` (appended: a resumed run's log goes on)."""
    os.makedirs(osp.dirname(osp.abspath(log_file)), exist_ok=True)
    with open(log_file, 'a') as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                              env=env or os.environ.copy()).returncode
