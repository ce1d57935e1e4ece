"""Which classes each image of a dataset holds: the index that intra-class pairing draws from.

Detection reads the annotations the dataset already loaded. Segmentation scans the label maps
once, through mmseg's own ``LoadAnnotations`` (so ``reduce_zero_label`` and ``label_map`` apply
exactly as in training), and caches the result on disk, keyed by the files and label settings.
"""
import hashlib
import json
import os
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.dist import barrier, get_rank
from mmengine.fileio import dump, load
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

ClassIndex = List[np.ndarray]  # per image, the sorted class ids it holds


def detection_class_index(dataset) -> ClassIndex:
    """Classes of the non-ignored instances of each image, from ``get_data_info``."""
    index = []
    for i in range(len(dataset)):
        instances = dataset.get_data_info(i).get('instances', [])
        labels = [inst['bbox_label'] for inst in instances if not inst.get('ignore_flag', 0)]
        index.append(np.unique(np.asarray(labels, dtype=np.int64)))
    return index


def default_cache_dir() -> str:
    """``$IPSD_MM_CACHE``, else ``$XDG_CACHE_HOME/ipsd_mm``, else ``~/.cache/ipsd_mm``."""
    if os.environ.get('IPSD_MM_CACHE'):
        return os.environ['IPSD_MM_CACHE']
    base = os.environ.get('XDG_CACHE_HOME') or osp.join(osp.expanduser('~'), '.cache')
    return osp.join(base, 'ipsd_mm')


def _label_settings(dataset) -> dict:
    info = dataset.get_data_info(0)
    label_map = info.get('label_map')
    return dict(reduce_zero_label=bool(info.get('reduce_zero_label', False)),
                label_map=sorted(label_map.items()) if label_map else None,
                ignore_index=int(getattr(dataset, 'ignore_index', 255)))


def _file_state(path: str) -> list:
    """A local file's size and modification time; remote files are known by path only."""
    try:
        st = os.stat(path)
        return [path, st.st_size, st.st_mtime_ns]
    except (OSError, TypeError):
        return [str(path)]


def segmentation_signature(dataset, seg_paths: List[str]) -> str:
    """Changes whenever a label file, the file list or the label settings change."""
    state = dict(settings=_label_settings(dataset), files=[_file_state(p) for p in seg_paths])
    return hashlib.sha1(json.dumps(state, default=str).encode()).hexdigest()


def _load_cache(path: str, signature: str, length: int) -> Optional[ClassIndex]:
    """The cached index if it is whole and current, else None (a broken file is never
    trusted)."""
    if not osp.isfile(path):
        return None
    try:
        cached = load(path, file_format='pkl')
        if cached['signature'] == signature and len(cached['classes']) == length:
            return [np.asarray(c, dtype=np.int64) for c in cached['classes']]
        print_log(f'class index cache {path} is stale (label files or settings changed); '
                  'rebuilding it', logger='current')
    except Exception as e:  # truncated, corrupt or foreign file
        print_log(f'class index cache {path} is unreadable ({type(e).__name__}: {e}); '
                  'rebuilding it', logger='current')
    return None


def _scan_label_maps(dataset, seg_paths: List[str]) -> ClassIndex:
    from mmseg.datasets.transforms import LoadAnnotations  # the loader training uses
    loader = LoadAnnotations(backend_args=getattr(dataset, 'backend_args', None))
    ignore_index = _label_settings(dataset)['ignore_index']
    name = type(dataset).__name__
    print_log(f'IntraClassPairDataset: scanning {len(seg_paths)} label maps of {name} for the '
              'class index (once; cached)', logger='current')
    index, progress = [], ProgressBar(len(seg_paths))
    for i, path in enumerate(seg_paths):
        info = dataset.get_data_info(i)
        try:
            results = loader(dict(seg_map_path=path, seg_fields=[],
                                  reduce_zero_label=info.get('reduce_zero_label', False),
                                  label_map=info.get('label_map')))
        except Exception as e:
            raise OSError(f'{name}: cannot read label map {path!r} of sample {i} '
                          f'({type(e).__name__}: {e}); check data_root and data_prefix.seg_map_path'
                          ) from e
        counts = np.bincount(results['gt_seg_map'].ravel().astype(np.int64))
        counts[ignore_index:ignore_index + 1] = 0
        index.append(np.flatnonzero(counts))
        progress.update()
    return index


def segmentation_class_index(dataset, cache_file: Optional[str] = None,
                             use_cache: bool = True) -> ClassIndex:
    """Classes each label map holds (ignore excluded), cached in ``cache_file`` (default: a file
    per dataset in :func:`default_cache_dir`). In distributed runs rank 0 builds it and the other
    ranks read it."""
    seg_paths = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if 'seg_map_path' not in info:
            raise KeyError(f'{type(dataset).__name__} sample {i} has no seg_map_path: the '
                           'segmentation class index needs label maps')
        seg_paths.append(info['seg_map_path'])
    if not use_cache:
        return _scan_label_maps(dataset, seg_paths)
    signature = segmentation_signature(dataset, seg_paths)
    if cache_file is None:
        where = json.dumps([type(dataset).__name__, getattr(dataset, 'data_root', None),
                            getattr(dataset, 'ann_file', None), seg_paths[:1], len(seg_paths)])
        name = hashlib.sha1(where.encode()).hexdigest()[:16]
        cache_file = osp.join(default_cache_dir(), f'class_index_{name}.pkl')
    index = None
    if get_rank() == 0:
        index = _load_cache(cache_file, signature, len(seg_paths))
        if index is None:
            index = _scan_label_maps(dataset, seg_paths)
            os.makedirs(osp.dirname(osp.abspath(cache_file)), exist_ok=True)
            tmp = f'{cache_file}.{os.getpid()}.tmp'
            dump(dict(signature=signature, classes=[c.tolist() for c in index]), tmp,
                 file_format='pkl')
            os.replace(tmp, cache_file)  # atomic: a reader never sees half a file
    barrier()
    if index is None:
        index = _load_cache(cache_file, signature, len(seg_paths))
        if index is None:  # e.g. no shared file system between nodes
            index = _scan_label_maps(dataset, seg_paths)
    return index
