"""``pair_collate``: a batch of pairs as one flat batch the usual data preprocessors accept."""
from typing import Any, Sequence

from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS

from ..pair_meta import PAIR_ID


class PackedPair(list):
    """An item of ``IntraClassPairDataset``: the anchor's and the partner's packed samples.

    Only :func:`pair_collate` collates pairs. Another collate function (``pseudo_collate``,
    ``default_collate``) rebuilds the item type from batched columns, whose ``data_samples``
    are lists: that is refused here, where the batch is first seen, with the fix."""

    def __init__(self, members=()) -> None:
        members = list(members)
        if any(isinstance(m, dict) and isinstance(m.get('data_samples'), (list, tuple))
               for m in members):
            raise RuntimeError("IntraClassPairDataset's items are pairs, collated only by "
                               "pair_collate: set the train dataloader's collate_fn="
                               "dict(type='pair_collate')")
        super().__init__(members)


def _is_pair(item: Any) -> bool:
    return (isinstance(item, (list, tuple)) and len(item) == 2
            and all(isinstance(m, dict) and 'data_samples' in m for m in item))


@FUNCTIONS.register_module()
def pair_collate(data_batch: Sequence) -> Any:
    """Flatten ``[(a0, b0), (a1, b1), …]`` into ``[a0, b0, a1, b1, …]`` and collate it as
    ``pseudo_collate`` does; a batch of plain samples is collated as ``pseudo_collate`` would.

    The pair id is renumbered to the pair's position in the batch, so ids are unique within it
    even when a batch of an ``InfiniteSampler`` holds the same image twice.
    """
    pairs = [_is_pair(item) for item in data_batch]
    if not any(pairs):
        return pseudo_collate(data_batch)
    if not all(pairs):
        raise TypeError('pair_collate got a batch mixing pairs and single samples: every item '
                        'must come from IntraClassPairDataset')
    flat = []
    for pair_id, pair in enumerate(data_batch):
        for member in pair:
            member['data_samples'].set_metainfo({PAIR_ID: pair_id})
            flat.append(member)
    return pseudo_collate(flat)
