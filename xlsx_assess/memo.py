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


class Memo:
    """An LRU map from a key to a value, holding at most `max_bytes` as estimated by the caller."""

    everyone: list["Memo"] = []     # for the tests and the README: every memo and its bound

    def __init__(self, name: str, max_bytes: int) -> None:
        self.name, self.max_bytes = name, max_bytes
        self.found: dict[Any, tuple[Any, int]] = {}
        self.held = 0
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
        if size > self.max_bytes // 4 or key in self.found:
            return
        while self.found and self.held + size > self.max_bytes:
            _, freed = self.found.pop(next(iter(self.found)))
            self.held -= freed
        self.found[key] = (value, size)
        self.held += size

    def clear(self) -> None:
        self.found.clear()
        self.held = 0


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
