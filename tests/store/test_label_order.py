import random

import numpy as np
import pytest

from watchkeeper.model import Labels, SeriesBatch, labels_from_dict
from watchkeeper.store import MetricsDB, StorageOptions
from watchkeeper.store.label_order import LabelOrder


def _random_labels(rng: random.Random) -> Labels:
    pairs = {"__name__": rng.choice(["up", "http_requests_total", "a", "Zeta"])}
    for name in rng.sample(["job", "instance", "A", "le", "code", "job_x"], rng.randint(0, 4)):
        pairs[name] = rng.choice(["", "0", "1", "10", "9", "a", "ab", "b", "é"])
    return labels_from_dict(pairs)


def _distinct(rng: random.Random, count: int, first_sid: int) -> dict[int, Labels]:
    out: dict[int, Labels] = {}
    seen: set[Labels] = set()
    sid = first_sid
    while len(out) < count:
        labels = _random_labels(rng)
        if labels not in seen:
            seen.add(labels)
            out[sid] = labels
        sid += rng.randint(1, 3)
    return out


def _expected(sids: np.ndarray, labels: dict[int, Labels]) -> list[int]:
    return sorted(range(len(sids)), key=lambda i: labels[int(sids[i])])


@pytest.mark.parametrize("seed", range(6))
def test_ranks_give_label_order_before_and_after_refreshes(seed: int) -> None:
    rng = random.Random(seed)
    labels = _distinct(rng, 300, 1)
    order = LabelOrder()

    def check() -> None:
        ids = sorted(labels)
        for size in (0, 1, 7, len(ids)):
            sids = np.array(sorted(rng.sample(ids, size)), dtype=np.int64)
            assert order.order(sids, labels) == _expected(sids, labels)

    check()  # nothing ranked yet: label comparisons
    assert order.refresh(dict(labels), 1) == 300
    assert len(order) == 300
    check()
    # a few new series (inserted one by one on the next refresh) and some removed
    more = _distinct(random.Random(seed + 100), 340, max(labels) + 1)
    added = 0
    for sid, ls in more.items():
        if ls not in labels.values() and added < 10:
            labels[sid] = ls
            added += 1
    for sid in rng.sample(sorted(labels), 5):
        del labels[sid]
    check()  # the new series are not ranked yet: those reads compare labels
    assert order.refresh(dict(labels), 2) == added
    assert order.changes == 2
    check()
    # many new series: everything sorted again
    for sid, ls in more.items():
        if ls not in labels.values():
            labels[sid] = ls
    order.refresh(dict(labels), 3)
    check()


def test_store_reads_in_label_order_with_ranked_and_new_series(tmp_path) -> None:
    db = MetricsDB(
        tmp_path / "metrics", StorageOptions(retention_ms=86_400_000, block_duration_ms=7_200_000)
    )
    db.open()
    try:
        rng = random.Random(3)
        created = list(_distinct(rng, 200, 1).values())
        rows = [(ls, 1_000, float(i)) for i, ls in enumerate(created[:150])]
        db.append("t", SeriesBatch.from_samples(rows))
        assert db.refresh_label_orders() == 150
        assert db.refresh_label_orders() == 0  # nothing changed: nothing copied or sorted
        late = [(ls, 2_000, float(i)) for i, ls in enumerate(created[150:])]
        db.append("t", SeriesBatch.from_samples(late))
        # ranked and not-yet-ranked series in one read
        read = db.read_columns("t", [], 0, 10_000)
        assert read.labels == sorted(created)
        assert db.refresh_label_orders() == 50
        read = db.read_columns("t", [], 0, 10_000)
        assert read.labels == sorted(created)
        by_labels = {ls: i for i, ls in enumerate(created)}
        values = read.values[read.bounds[:-1]]
        assert [by_labels[ls] % 150 for ls in read.labels] == [int(v) for v in values]
    finally:
        db.close()
