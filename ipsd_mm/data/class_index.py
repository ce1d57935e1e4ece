"""Which classes each image of a dataset holds: the index that intra-class pairing draws from.

Detection reads the annotations the dataset already loaded. Segmentation scans the label maps
once, through mmseg's own ``LoadAnnotations`` (so ``reduce_zero_label`` and ``label_map`` apply
exactly as in training), and caches the result on disk, keyed by the files and label settings.
"""
import hashlib
import json
import os
import os.path as osp
from typing import List, Optional, Union

import numpy as np
from mmengine.dist import barrier, get_rank
from mmengine.fileio import dump, load
from mmengine.logging import print_log
from ..progress import progress
from ..swap.semantic import MAX_LABEL, present_classes

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


def resolve_cache_option(option: Union[str, bool, None]) -> Union[str, bool, None]:
    """``class_index_cache`` as the index builder takes it: False (no cache), None (the default
    file) or a file path; True means the default file too. Anything else is a clear error."""
    if option is True or option is None:
        return None
    if option is False:
        return False
    if not isinstance(option, (str, os.PathLike)) or not str(option):
        raise ValueError('IntraClassPairDataset: class_index_cache must be a file path, True or '
                         f'None (the default file in {default_cache_dir()}) or False (no '
                         f'cache), got {option!r}')
    option = os.fspath(option)
    if osp.isdir(option):
        raise ValueError(f'IntraClassPairDataset: class_index_cache={option!r} is a directory; '
                         f'name a file in it, e.g. {osp.join(option, "class_index.pkl")!r}')
    return option


def check_labels(present: np.ndarray, num_classes: Optional[int], ignore_index: int,
                 where: str) -> None:
    """Every label is a class id of the dataset or its ignore index, else a clear error."""
    if num_classes is None:
        return
    bad = present[(present >= num_classes) & (present != ignore_index)]
    if bad.size:
        raise ValueError(f'{where} holds labels {bad[:5].tolist()} that are neither class ids '
                         f'(0..{num_classes - 1}) nor the ignore_index ({ignore_index}): set '
                         "the dataset's ignore_index (and IntraClassPatchSwap's) to the value "
                         'the label maps use for unlabelled pixels, or fix the label files')


def _scan_label_maps(dataset, seg_paths: List[str]) -> ClassIndex:
    from mmseg.datasets.transforms import LoadAnnotations  # the loader training uses
    loader = LoadAnnotations(backend_args=getattr(dataset, 'backend_args', None))
    ignore_index = _label_settings(dataset)['ignore_index']
    classes = dataset.metainfo.get('classes')
    num_classes = len(classes) if classes is not None else None
    name = type(dataset).__name__
    print_log(f'IntraClassPairDataset: scanning {len(seg_paths)} label maps of {name} for the '
              'class index (once; cached)', logger='current')
    index, bar = [], progress(len(seg_paths), "class index: label maps scanned")
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
        label = results['gt_seg_map']
        where = f'{name}: label map {path!r} of sample {i}'
        if label.size and label.min() < 0:
            raise ValueError(f'{where} holds negative labels; mark unlabelled pixels with '
                             f'the ignore_index ({ignore_index})')
        top = int(label.max()) if label.size else 0
        if num_classes is not None and top >= num_classes:
            huge = top > max(ignore_index, MAX_LABEL)  # a bincount would need memory to match
            check_labels(np.unique(label) if huge else present_classes(label), num_classes,
                         ignore_index, where)
        index.append(present_classes(label, (ignore_index, )))
        bar.update()
    return index


def segmentation_class_index(dataset, cache_file: Union[str, bool, None] = None) -> ClassIndex:
    """Classes each label map holds (ignore excluded), cached in ``cache_file`` (None: a file
    per dataset in :func:`default_cache_dir`; False: no cache). In distributed runs rank 0
    builds it and the other ranks read it."""
    cache_file = resolve_cache_option(cache_file)
    seg_paths = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if 'seg_map_path' not in info:
            raise KeyError(f'{type(dataset).__name__} sample {i} has no seg_map_path: the '
                           'segmentation class index needs label maps')
        seg_paths.append(info['seg_map_path'])
    if cache_file is False:
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
            tmp = f'{cache_file}.{os.getpid()}.tmp'
            try:
                os.makedirs(osp.dirname(osp.abspath(cache_file)), exist_ok=True)
                dump(dict(signature=signature, classes=[c.tolist() for c in index]), tmp,
                     file_format='pkl')
                os.replace(tmp, cache_file)  # atomic: a reader never sees half a file
            except OSError as e:
                raise OSError(f'IntraClassPairDataset: cannot write the class index cache '
                              f'{cache_file!r} ({type(e).__name__}: {e}); set class_index_cache'
                              ' to a writable file path, or False for no cache') from e
            finally:
                if osp.exists(tmp):
                    os.remove(tmp)
    barrier()
    if index is None:
        index = _load_cache(cache_file, signature, len(seg_paths))
        if index is None:  # e.g. no shared file system between nodes
            index = _scan_label_maps(dataset, seg_paths)
    return index
