"""The pairs of a batch, found from the pair metadata (``pair_meta``), never from batch
positions; and host indices moved to the device without waiting for it."""
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from ..pair_meta import ANCHOR, PAIR_ID, PARTNER, ROLE


def check_pair_metadata(data_samples: Sequence) -> None:
    """Every sample carries the pair metadata, else the fix in one message."""
    for pos, sample in enumerate(data_samples):
        if not hasattr(sample, 'get') or sample.get(PAIR_ID) is None or sample.get(ROLE) is None:
            raise KeyError(
                f'IPSDHook: data sample {pos} carries no {PAIR_ID}/{ROLE}: wrap the train '
                "dataset in dict(type='IntraClassPairDataset', ...) and set the train "
                "dataloader's collate_fn=dict(type='pair_collate')")


def find_pairs(data_samples: Sequence) -> List[Tuple[int, int]]:
    """Batch positions (anchor, partner) of each pair, from ``ipsd_pair_id`` / ``ipsd_role``."""
    check_pair_metadata(data_samples)
    members: Dict[int, Dict[int, int]] = defaultdict(dict)
    for pos, sample in enumerate(data_samples):
        members[int(sample.get(PAIR_ID))][int(sample.get(ROLE))] = pos
    pairs = []
    for pair_id, roles in sorted(members.items()):
        if set(roles) != {ANCHOR, PARTNER}:
            raise ValueError(f'IPSDHook: pair {pair_id} lacks a member in this batch (roles '
                             f'{sorted(roles)}); use pair_collate, which keeps pairs whole')
        pairs.append((roles[ANCHOR], roles[PARTNER]))
    return pairs


def to_device(columns: List[Sequence[int]], device: torch.device) -> Tensor:
    """Host integers as one (K, N) long tensor on ``device``, copied without waiting for it."""
    host = torch.tensor(columns, dtype=torch.long)
    if device.type == 'cuda':
        host = host.pin_memory()
    return host.to(device, non_blocking=True)
