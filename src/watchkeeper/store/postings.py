"""The inverted index of one tenant: label pair -> series ids, and matcher resolution over it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from watchkeeper.model import Labels, Matcher, MatchOp


class Postings:
    def __init__(self) -> None:
        self._by_name: dict[str, dict[str, set[int]]] = {}
        self._all: set[int] = set()
        # one (name, value) tuple per distinct pair, shared by every label set holding it
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def add(self, sid: int, labels: Labels) -> Labels:
        """Index a series; returns its label set made of the shared pairs, to keep instead of
        `labels`: a pair such as job="node" is then one object however many series hold it
        (with 100,000 series of 7 labels, 114 MiB of label objects become 9)."""
        self._all.add(sid)
        pairs = self._pairs
        for name, value in labels:
            self._by_name.setdefault(name, {}).setdefault(value, set()).add(sid)
        return tuple([pairs.setdefault(pair, pair) for pair in labels])

    def remove(self, sid: int, labels: Labels) -> None:
        self._all.discard(sid)
        for name, value in labels:
            values = self._by_name.get(name)
            if values is None:
                continue
            ids = values.get(value)
            if ids is not None:
                ids.discard(sid)
                if not ids:
                    del values[value]
                    self._pairs.pop((name, value), None)
            if not values:
                del self._by_name[name]

    def all_ids(self) -> set[int]:
        return set(self._all)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def values(self, name: str) -> dict[str, set[int]]:
        return self._by_name.get(name, {})

    def select(self, matchers: Sequence[Matcher]) -> set[int]:
        """Series satisfying every matcher, with Prometheus' empty-value rule: a matcher that
        matches "" also selects series without the label."""
        # Equality matchers first, smallest postings first: `{__name__="x", rule="7"}` starts
        # from rule="7"'s one series instead of copying x's thousands.
        equal: list[set[int]] = []
        others: list[Matcher] = []
        for matcher in matchers:
            if matcher.op is MatchOp.EQUAL and matcher.value:
                ids = self._by_name.get(matcher.name, {}).get(matcher.value)
                if not ids:
                    return set()
                equal.append(ids)
            else:
                others.append(matcher)
        result: set[int] | None = None
        if equal:
            equal.sort(key=len)
            result = set(equal[0])
            for ids in equal[1:]:
                result &= ids
                if not result:
                    return set()
        # then the other positive matchers: they narrow the candidates faster than negative ones
        for matcher in sorted(others, key=lambda m: m.matches_empty()):
            values = self._by_name.get(matcher.name, {})
            if not matcher.matches_empty():
                hits = _union(ids for value, ids in values.items() if matcher.matches(value))
                result = hits if result is None else result & hits
            else:
                misses = _union(ids for value, ids in values.items() if not matcher.matches(value))
                result = (self.all_ids() if result is None else result) - misses
            if not result:
                return set()
        return self.all_ids() if result is None else result

    def select_any(self, matcher_sets: Sequence[Sequence[Matcher]]) -> set[int]:
        """Union over several matcher sets (`match[]` given more than once, or `or`)."""
        return _union(self.select(matchers) for matchers in matcher_sets)


def _union(sets: Iterable[set[int]]) -> set[int]:
    result: set[int] = set()
    for ids in sets:
        result |= ids
    return result
