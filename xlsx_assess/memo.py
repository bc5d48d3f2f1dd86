"""Memos bounded by the bytes they hold.

A batch repeats the same parts in every file a program saved (styles, theme, the guide sheet, the
validation rules), so pure functions of those bytes are remembered. Every memo here is bounded by
an estimate of the bytes its keys and values hold (not by a count of entries: one crafted entry can
be a thousand times the size of a usual one), and the estimate errs on the large side.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

ENTRY_OVERHEAD = 200        # a dict slot, the key tuple and the bookkeeping around one entry (generous)
SIGHTINGS = 4096            # hashes of keys seen once, per memo that waits for a second sight (under 0.5 MB)


class Memo:
    """An LRU map from a key to a value, holding at most `max_bytes` as estimated by the caller."""

    everyone: list["Memo"] = []     # for the tests and the README: every memo and its bound

    def __init__(self, name: str, max_bytes: int, second_sight: bool = False) -> None:
        """`second_sight`: keep a value only for a key seen before (for memos whose keys are mostly
        unique to one file, like a form sheet's bytes: remembering those would only hold memory)."""
        self.name, self.max_bytes = name, max_bytes
        self.found: dict[Any, tuple[Any, int]] = {}
        self.held = 0
        self.sightings: dict[int, None] | None = {} if second_sight else None   # hashes of keys seen once
        Memo.everyone.append(self)

    def get(self, key: Any) -> Any:
        hit = self.found.pop(key, None)              # the least recently used goes first
        if hit is None:
            return None
        self.found[key] = hit
        return hit[0]

    def put(self, key: Any, value: Any, size: int) -> None:
        """Remember `value` under `key`; `size`: the bytes both hold. Too big for a quarter of the
        bound, it is not kept at all (one entry may not push out everything else)."""
        size += ENTRY_OVERHEAD
        if size > self.max_bytes // 4 or key in self.found or not self._seen_before(key):
            return
        while self.found and self.held + size > self.max_bytes:
            _, freed = self.found.pop(next(iter(self.found)))
            self.held -= freed
        self.found[key] = (value, size)
        self.held += size

    def _seen_before(self, key: Any) -> bool:
        if self.sightings is None:
            return True
        mark = hash(key)
        if mark in self.sightings:
            return True
        if len(self.sightings) >= SIGHTINGS:
            self.sightings.pop(next(iter(self.sightings)))
        self.sightings[mark] = None
        return False

    def clear(self) -> None:
        self.found.clear()
        self.held = 0
        if self.sightings is not None:
            self.sightings.clear()


def remembered(memo: Memo, key: Any, make: Callable[[], Any], size: Callable[[Any], int]) -> Any:
    """`memo`'s value for `key`, made (and sized) on a miss."""
    value = memo.get(key)
    if value is None:
        value = make()
        memo.put(key, value, size(value))
    return value


def size_of_bytes(*blobs: bytes | str) -> int:
    return sum(sys.getsizeof(b) for b in blobs)


def total_bound() -> int:
    """The bytes every memo of the package may hold together."""
    return sum(m.max_bytes for m in Memo.everyone)
