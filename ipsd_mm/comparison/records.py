"""Results that outlive machines: what a number depends on, the results file, which runs are
done, pairing a run with its baseline, the 95% interval of the paired differences, table cells."""
import json
import os
import os.path as osp
import platform
from typing import Callable, Dict, Hashable, Iterable, List, Optional, Sequence

import numpy as np


# -- what a number depends on ---------------------------------------------------------------

def machine(threads: Optional[int] = 1) -> dict:
    """What a result's numbers depend on besides the seed: the CPU (its model name, and where
    the name does not tell them apart, as a virtual machine's "AMD EPYC" does not, its family,
    model and stepping and the instruction set torch's kernels use), the torch build, the
    threads per run, and the GPU when there is one."""
    import torch
    cpu, info = platform.processor() or platform.machine(), {}
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block
                key, _, value = line.partition(':')
                info[key.strip()] = value.strip()
    except OSError:
        pass
    cpu = info.get('model name', cpu)
    kind = ' '.join(f'{label} {info[key]}' for label, key in (
        ('family', 'cpu family'), ('model', 'model'), ('stepping', 'stepping')) if key in info)
    out = dict(cpu=cpu, cpu_kind=', '.join(filter(None, (
        kind, torch.backends.cpu.get_cpu_capability()))), torch=torch.__version__, threads=threads)
    if threads is None and torch.cuda.is_available():
        out['gpu'] = torch.cuda.get_device_name(0)
    return out


def machine_id(m: dict) -> str:
    """A machine as the results tell machines apart (records made before ``cpu_kind`` was kept
    have only the CPU's name)."""
    kind = f" ({m['cpu_kind']})" if m.get('cpu_kind') else ''
    gpu = f" | {m['gpu']}" if m.get('gpu') else ''
    threads = f" | {m['threads']} thread(s)" if m.get('threads') is not None else ''
    return f"{m['cpu']}{kind} | torch {m['torch']}{threads}{gpu}"


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


def done_elsewhere(specs: Iterable[dict], done: Sequence[dict],
                   key: Callable[[dict], Hashable]) -> str:
    """Says how many of the runs to do (``specs``, none of them done on this machine) the
    results file holds from another machine only, and that they run again here: a row and
    its pairs are of one machine. ``key`` is a run's identity without the machine. Empty when
    there are none."""
    wanted = {key(spec) for spec in specs}
    elsewhere = [r for r in done if key(r) in wanted]
    if not elsewhere:
        return ''
    count = len({key(r) for r in elsewhere})
    machines = sorted({machine_id(r['machine']) for r in elsewhere})
    return (f'{count} of them are in the results file from another machine only ('
            + '; '.join(machines) + '): they run again here, so that every row and pair '
            'of the table is of one machine; those results stay and keep their own rows')


# -- pairing, intervals, cells ---------------------------------------------------------------------

def group_by(records: Iterable[dict], key: Callable[[dict], Hashable]) -> Dict[Hashable, list]:
    """``records`` by ``key``, each group in the order the records come."""
    groups: Dict[Hashable, list] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return groups


def baselines_of(records: Iterable[dict], pair: Callable[[dict], Hashable],
                 value: Callable[[dict], float],
                 is_baseline: Callable[[dict], bool]) -> Dict[Hashable, float]:
    """The baseline's value per pairing key (``pair``: what a run and its baseline share,
    e.g. seed and machine); the later record of a key wins."""
    return {pair(r): value(r) for r in records if is_baseline(r)}


def paired_diffs(runs: Iterable[dict], baselines: Dict[Hashable, float],
                 pair: Callable[[dict], Hashable], value: Callable[[dict], float]) -> List[float]:
    """Each run's value less its baseline's (same pairing key); runs without one are left
    out of the pairs (and so of the count a cell shows)."""
    return [value(r) - baselines[pair(r)] for r in runs if pair(r) in baselines]


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
