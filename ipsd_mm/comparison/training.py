"""Training the runs of a comparison: for any config one ``tools/train.py`` process (or
``torch.distributed.run`` on N processes), its validation curve read from what the Runner writes,
and the IPSD config derived from a baseline; for a study that drives the Runner itself a run
that resumes from its last evaluation, and a pool that runs them N at a time."""
import json
import logging
import os
import os.path as osp
import subprocess
import socket
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from glob import glob
from typing import Callable, Dict, Hashable, Iterable, List, Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log

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


class RunDirBusy(RuntimeError):
    """A run's work dir that another live process is training in now."""


LOCK = '.training'  # in a run's work dir, locked while a process trains the run


@contextmanager
def hold_run_dir(work_dir: str):
    """Hold ``work_dir`` for this process while the block runs; raise ``RunDirBusy`` (naming the
    holder) if another process holds it: two runners of one plan or results file must not
    train the same run into the same checkpoints. The operating system drops the lock when its
    process ends, however it ends, so a killed run leaves nothing to clean up. POSIX only
    (``fcntl``); elsewhere nothing is held."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        yield
        return
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, LOCK), 'a+') as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise RunDirBusy(f'{work_dir} is being trained now by another process '
                             f'({f.read().strip() or "unknown"}): wait for it to end, or '
                             'stop it, before training this run here') from None
        f.seek(0)
        f.truncate()
        f.write(f'pid {os.getpid()} on {socket.gethostname()}')
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_dir_busy(work_dir: str) -> Optional[str]:
    """Why ``work_dir`` cannot be trained in now (another process holds it), or None."""
    if not osp.isdir(work_dir):
        return None
    try:
        with hold_run_dir(work_dir):
            return None
    except RunDirBusy as busy:
        return str(busy)


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
    package = osp.dirname(osp.dirname(osp.realpath(__file__)))  # ipsd_mm/
    for path in (osp.join(osp.dirname(package), 'tools'), osp.join(package, '.mim', 'tools')):
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


def run_logged(command: List[str], log_file: str, env: Optional[dict] = None,
               append: bool = True, cwd: Optional[str] = None) -> int:
    """Run ``command`` with its output in ``log_file``: appended (a resumed run's log goes
    on), or written anew with ``append=False``."""
    os.makedirs(osp.dirname(osp.abspath(log_file)), exist_ok=True)
    with open(log_file, 'a' if append else 'w') as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                              env=env or os.environ.copy(), cwd=cwd).returncode


# -- runs that resume from their last evaluation (tools/accuracy_study.py) ---------------------

#: where a run keeps its curve in the message hub, which its checkpoint carries (the names are
#: those of the checkpoints the study's unfinished runs hold)
CURVE, EXTRA, RESUMED_AT = 'study/curve', 'study/extra', 'study/resumed_at'


class RecordEvaluations(Hook):
    """Keeps (iteration, metric) of every validation, then saves the run's checkpoint, so that
    a run stopped part way resumes from its last evaluation with its curve.

    The curve, the metrics named by ``keep`` (prefixes; last evaluation only) and the
    iterations the run resumed at live in the message hub, which the checkpoint carries. A
    metric that is missing (mmdet's CocoMetric with no detection at all) scores 0.

    Args:
        metric (str): the metric of the curve, e.g. ``mIoU`` or ``coco/bbox_mAP``.
        run (str): the run's identity, saved in the checkpoint's meta (``study_run``): a run
            resumes only from a checkpoint of its own.
        checkpoint (str): the checkpoint's file name in the work dir.
        keep (Sequence[str]): prefixes of other metrics to keep from the last evaluation.
    """

    def __init__(self, metric: str, run: str, checkpoint: str, keep: Sequence[str] = ()):
        self.metric, self.run, self.checkpoint, self.keep = metric, run, checkpoint, tuple(keep)

    def before_train(self, runner) -> None:
        if runner.iter:  # resumed
            resumed = runner.message_hub.get_info(RESUMED_AT, []) + [runner.iter]
            runner.message_hub.update_info(RESUMED_AT, resumed)

    def after_val_epoch(self, runner, metrics=None) -> None:
        hub = runner.message_hub
        value = float((metrics or {}).get(self.metric, 0.0))
        hub.update_info(CURVE, hub.get_info(CURVE, []) + [(runner.iter, value)])
        hub.update_info(EXTRA, {k: float(v) for k, v in (metrics or {}).items()
                                if k.startswith(self.keep)})
        partial = self.checkpoint + '.part'  # a kill while saving leaves the last good one
        runner.save_checkpoint(runner.work_dir, partial,
                               meta=dict(epoch=runner.epoch, iter=runner.iter,
                                         study_run=self.run))
        os.replace(osp.join(runner.work_dir, partial),
                   osp.join(runner.work_dir, self.checkpoint))


def train_resumable(cfg, metric: str, run: str, checkpoint: str, keep: Sequence[str] = ()):
    """Train ``cfg`` (its ``work_dir`` set) and return the Runner, its curve in the message
    hub (``CURVE``, ``EXTRA``, ``RESUMED_AT``). A checkpoint that ``RecordEvaluations`` left in
    the work dir is resumed when it is this ``run``'s, and refused, saying what to do, when it
    is another's; another process training in the same work dir is refused too."""
    import torch
    from mmengine.runner import Runner
    path = osp.join(cfg.work_dir, checkpoint)
    with hold_run_dir(cfg.work_dir):
        if osp.isfile(path):
            saved = torch.load(path, map_location='cpu', weights_only=True)['meta']
            if saved.get('study_run') != run:
                raise RuntimeError(
                    f'{path} was saved by another run or machine ({saved.get("study_run")}), '
                    f'not this one ({run}); delete it to start this run over')
            cfg.load_from, cfg.resume = path, True
        runner = Runner.from_cfg(cfg)
        runner.register_hook(RecordEvaluations(metric, run, checkpoint, keep), priority='LOWEST')
        runner.train()
    return runner


def run_pool(specs: Sequence[dict], jobs: int, launch: Callable[[dict], Optional[dict]],
             after: Callable[[dict], Optional[Hashable]] = lambda spec: None,
             provides: Callable[[dict], Optional[Hashable]] = lambda spec: None
             ) -> Iterable[dict]:
    """Run ``launch(spec)`` for each of ``specs``, ``jobs`` at a time, yielding each result as
    it finishes (so the caller can record it at once). A spec whose ``after`` names what another
    spec ``provides`` (a teacher's weights) waits for that one without holding a slot, and
    starts as soon as it has finished, ahead of the runs that need nothing (it is the longer
    path). ``launch`` returning None means it did not run that spec here (it says why); a run
    that fails does not stop the others: their results still come back, and the failures are
    raised together at the end. Either way, the specs after it are not started, and say so."""
    keys = {provides(spec) for spec in specs} - {None}
    waiting: Dict[Hashable, List[dict]] = {}
    pending: List[dict] = []
    for spec in specs:
        if after(spec) in keys:
            waiting.setdefault(after(spec), []).append(spec)
        else:
            pending.append(spec)
    failures, running = [], {}
    with ThreadPoolExecutor(jobs) as pool:
        while pending or running:
            while pending and len(running) < jobs:
                spec = pending.pop(0)
                running[pool.submit(launch, spec)] = spec
            future = next(as_completed(running))
            spec = running.pop(future)
            error = future.exception()
            result = None if error else future.result()
            dependents = waiting.pop(provides(spec), [])
            if result is not None:
                pending[:0] = dependents
                yield result
            elif dependents:
                print_log(f'{len(dependents)} run(s) not started: they need '
                          f'{provides(spec)}, which was not made here', logger='current',
                          level=logging.WARNING)
            if error:
                failures.append(error)
    if len(failures) > 1:
        raise RuntimeError('; '.join(map(str, failures))) from failures[0]
    if failures:
        raise failures[0]
