"""Just enough of Office 97 files (compound files and BIFF8 records) to judge them before any reader does.

A returned .xls can be encrypted, damaged or reach far from A1 (python-calamine would allocate the whole
rectangle); these functions find that out from the bytes, bounded by the file's own size, and raise
ValueError (or struct.error, IndexError) on anything malformed.
"""

from __future__ import annotations

import struct

_FREE = 0xFFFFFFFA      # and above: free, end of chain, FAT and DIFAT sectors


class OleFile:
    """Just enough of a compound file (MS-CFB) to list its streams and read one, bounded by the file."""

    def __init__(self, data: bytes):
        if len(data) < 512:
            raise ValueError("文件过短")
        self.data = data
        shift, mini_shift = struct.unpack_from("<HH", data, 30)
        if shift not in (9, 12) or mini_shift != 6:
            raise ValueError("扇区大小无效")
        self.size = 1 << shift
        self.count = max(0, (len(data) - self.size) // self.size)   # sectors in the file (the header is one)
        n_fat, dir_start, _, self.cutoff, minifat_start, _, difat_start, n_difat = struct.unpack_from(
            "<IIIIIIII", data, 44)
        difat = list(struct.unpack_from("<109I", data, 76))
        sector, hops = difat_start, 0
        while sector < _FREE and hops <= min(n_difat, self.count):
            block = struct.unpack(f"<{self.size // 4}I", self._sector(sector))
            difat += block[:-1]
            sector, hops = block[-1], hops + 1
        fat_sectors = [s for s in difat[:min(n_fat, self.count)] if s < _FREE]
        self.fat = struct.unpack(f"<{len(fat_sectors) * self.size // 4}I",
                                 b"".join(self._sector(s) for s in fat_sectors))
        directory = self._chain(dir_start, self.fat, self._sector, self.count)
        self.entries: dict[str, tuple[int, int, int]] = {}
        for k in range(0, len(directory) - 127, 128):
            e = directory[k:k + 128]
            length, kind = struct.unpack_from("<HB", e, 64)
            if kind in (1, 2, 5) and 2 <= length <= 64:
                name = e[:length - 2].decode("utf-16-le", "replace")
                start, size = struct.unpack_from("<II", e, 116)
                self.entries.setdefault(name, (kind, start, size))
        root = next((v for v in self.entries.values() if v[0] == 5), None)
        self.mini = self._chain(root[1], self.fat, self._sector, self.count)[:root[2]] if root else b""
        table = self._chain(minifat_start, self.fat, self._sector, self.count)
        self.minifat = struct.unpack(f"<{len(table) // 4}I", table[:len(table) // 4 * 4])

    @property
    def names(self) -> set[str]:
        return set(self.entries)

    def stream(self, name: str) -> bytes:
        kind, start, size = self.entries[name]
        if size < self.cutoff:
            return self._chain(start, self.minifat, self._mini_sector, len(self.mini) // 64)[:size]
        return self._chain(start, self.fat, self._sector, self.count)[:size]

    def _sector(self, i: int) -> bytes:
        if i >= self.count:
            raise ValueError(f"扇区 {i} 超出文件")
        return self.data[(i + 1) * self.size:(i + 2) * self.size]

    def _mini_sector(self, i: int) -> bytes:
        if (i + 1) * 64 > len(self.mini):
            raise ValueError(f"小扇区 {i} 超出范围")
        return self.mini[i * 64:(i + 1) * 64]

    @staticmethod
    def _chain(start: int, table, read, most: int) -> bytes:
        """The sectors of one chain; a chain longer than the sectors there are is a loop."""
        out, sector = [], start
        while sector < _FREE:
            if len(out) >= most or sector >= len(table):
                raise ValueError("扇区链有误")
            out.append(read(sector))
            sector = table[sector]
        return b"".join(out)


_BIFF_CELLS = {0x0006, 0x0201, 0x0203, 0x0204, 0x0205, 0x00FD, 0x027E, 0x00D6, 0x0206, 0x0406}
_BIFF_MULTI = {0x00BD, 0x00BE}          # MULRK, MULBLANK: row, first col, ..., last col


def biff_extents(wb: bytes) -> tuple[bool, dict[str, tuple[int, int]]]:
    """(encrypted?, sheet -> (rows, cols) its cells span) from an .xls workbook stream's records."""
    names: dict[int, str] = {}
    extents: dict[str, tuple[int, int]] = {}
    current, pos, biff8 = None, 0, True
    while pos + 4 <= len(wb):
        rid, length = struct.unpack_from("<HH", wb, pos)
        body = wb[pos + 4:pos + 4 + length]
        if rid == 0x0809:                        # BOF: a new substream starts here
            if pos == 0:
                biff8 = len(body) >= 2 and struct.unpack_from("<H", body)[0] == 0x0600
                current = None
            else:
                current = names.get(pos, f"#{pos}")
        elif rid == 0x002F and current is None:  # FILEPASS in the globals: the rest is encrypted
            return True, {}
        elif rid == 0x0085 and len(body) >= 8:   # BOUNDSHEET: where each sheet's substream starts
            offset, cch = struct.unpack_from("<I", body)[0], body[6]
            if biff8:
                wide = body[7] & 1
                raw = body[8:8 + cch * (2 if wide else 1)]
                names[offset] = raw.decode("utf-16-le" if wide else "latin-1", "replace")
            else:
                names[offset] = body[7:7 + cch].decode("gb18030", "replace")
        elif current is not None and len(body) >= 4 and (rid in _BIFF_CELLS or rid in _BIFF_MULTI):
            row, col = struct.unpack_from("<HH", body)
            if rid in _BIFF_MULTI and len(body) >= 6:
                col = max(col, struct.unpack_from("<H", body, len(body) - 2)[0])
            rows, cols = extents.get(current, (0, 0))
            extents[current] = (max(rows, row + 1), max(cols, col + 1))
        pos += 4 + length
    return False, extents
