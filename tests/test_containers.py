"""Containers judged right and fast: password-protected archives (F105), flat OpenDocument returns
(F109, never skipped), and the work one archive may cost (F107, refused in seconds).

Every case goes through the library (`check_files`) and the command line (`check PATH --json`). Test
archives are written by hand, the traditional PKWARE cipher (ZipCrypto) included: no new dependency.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import lo
import pytest
from conftest import needs_libreoffice
from fills import full_marks, write_filled

from xlsx_assess import collect
from xlsx_assess.collect import check_paths
from xlsx_assess.issues import Code
from xlsx_assess.other_formats import flat_opendocument
from xlsx_assess.ranking import rank_townships
from xlsx_assess.workflow import check_files

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent


# -- archives written by hand -----------------------------------------------------------------------

def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _crc_table()


def zipcrypto(data: bytes, password: bytes, check: int) -> bytes:
    """`data` encrypted with the traditional PKWARE cipher, after its 12-byte header (last byte `check`)."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = (keys[0] >> 8) ^ _CRC[(keys[0] ^ byte) & 0xFF]
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = (keys[2] >> 8) ^ _CRC[(keys[2] ^ (keys[1] >> 24)) & 0xFF]

    for byte in password:
        update(byte)
    out = bytearray()
    for byte in bytes(range(11)) + bytes([check]) + data:
        t = (keys[2] | 2) & 0xFFFF
        out.append(byte ^ (((t * (t ^ 1)) >> 8) & 0xFF))
        update(byte)
    return bytes(out)


def write_zip(members: list[tuple[str, bytes]], mode: str = "plain") -> bytes:
    """A zip of deflated members: `plain`, `zipcrypto` (password 'secret') or `aes` (WinZip AE-2 as the
    directory declares it; the data is noise, since nothing may try to decrypt it)."""
    out, central = bytearray(), bytearray()
    for name, data in members:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload, crc, method, flags, extra = c.compress(data) + c.flush(), zlib.crc32(data), 8, 0x800, b""
        if mode == "zipcrypto":
            payload, flags = zipcrypto(payload, b"secret", crc >> 24), flags | 0x1
        elif mode == "aes":
            payload = os.urandom(16) + payload + os.urandom(10)
            method, flags, crc = 99, flags | 0x1, 0
            extra = struct.pack("<HHH2sBH", 0x9901, 7, 2, b"AE", 3, 8)
        encoded, offset = name.encode("utf-8"), len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, crc, len(payload), len(data),
                           len(encoded), len(extra)) + encoded + extra + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, 0, 0x21, crc, len(payload),
                               len(data), len(encoded), len(extra), 0, 0, 0, 0, offset) + encoded + extra
    start = len(out)
    n = len(members)
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), start, 0)
    return bytes(out)


def test_zipcrypto_is_the_real_cipher():
    data = b"<x>" * 1000
    blob = write_zip([("a.xml", data)], "zipcrypto")
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert zf.infolist()[0].flag_bits & 0x1
        assert zf.read("a.xml", pwd=b"secret") == data
        with pytest.raises(RuntimeError, match="password required"):
            zf.read("a.xml")


# -- helpers ----------------------------------------------------------------------------------------

def cli_check(path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "xlsx_assess", "check", str(path), "--json"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


def short(name: str) -> str:
    """A file's name, or an archive member's own name."""
    return Path(name.split(" › ")[-1]).name


def lib_verdicts(coll) -> dict[str, tuple[list[str], str | None]]:
    return {short(r.name): ([i.code for i in r.report], r.township.code if r.township else None)
            for r in coll.results}


def cli_verdicts(report: dict) -> dict[str, tuple[list[str], str | None]]:
    return {short(f["path"]): ([i["code"] for i in f["issues"]], f["township_code"]) for f in report["files"]}


def both(path: Path, ctx) -> list[dict[str, tuple[list[str], str | None]]]:
    """The verdicts by file name, from the library and from the command line (they must agree)."""
    coll = check_files([path], ctx, workers=1)
    report = cli_check(path)
    assert report["summary"] == coll.summary()
    assert report["summary"]["received"] == (report["summary"]["accepted"] + report["summary"]["excluded"]
                                             + report["summary"]["skipped"])
    return [lib_verdicts(coll), cli_verdicts(report)]


@pytest.fixture(scope="module")
def forms(ctx, tmp_path_factory) -> dict[str, bytes]:
    """Two good returns, by file name."""
    folder = tmp_path_factory.mktemp("forms")
    paths = [write_filled(ctx, t, folder, values=full_marks(ctx.rubric), zeroed=False) for t in ctx.townships[:2]]
    return {p.name: p.read_bytes() for p in paths}


# -- (a) passwords ----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["zipcrypto", "aes"])
def test_password_protected_archive_is_f105_for_each_return(ctx, forms, tmp_path, mode):
    archive = tmp_path / "乡镇报表.zip"
    archive.write_bytes(write_zip(list(forms.items()), mode))
    codes = {ctx.townships[0].code, ctx.townships[1].code}
    for verdicts in both(archive, ctx):
        assert len(verdicts) == 2
        for name, (got, township) in verdicts.items():
            assert got == [Code.PASSWORD_PROTECTED], (name, got)
            assert township in codes                      # named: the township sent something, with a password
    coll = check_paths([archive], ctx, workers=1)
    reasons = rank_townships(coll, ctx).missing.set_index("乡镇代码")["原因"]
    for code in codes:
        assert reasons[code].startswith("文件有错误")        # not "未收到文件"


def test_password_protected_archive_inside_an_archive_is_f105(ctx, forms, tmp_path):
    inner = write_zip(list(forms.items()), "zipcrypto")            # its members need the password
    archive = tmp_path / "outer.zip"
    archive.write_bytes(write_zip([("inner.zip", inner)]))
    for verdicts in both(archive, ctx):
        assert [codes for codes, _ in verdicts.values()] == [[Code.PASSWORD_PROTECTED]] * 2
    locked = tmp_path / "locked.zip"                                   # the archive inside needs it
    locked.write_bytes(write_zip([("inner.zip", write_zip(list(forms.items())))], "zipcrypto"))
    for verdicts in both(locked, ctx):
        assert verdicts == {"inner.zip": ([Code.PASSWORD_PROTECTED], None)}


def test_encrypted_member_inside_a_workbook_is_f105(ctx, forms, tmp_path):
    name, blob = next(iter(forms.items()))
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        parts = [(i.filename, zf.read(i)) for i in zf.infolist()]
    (tmp_path / name).write_bytes(write_zip(parts, "zipcrypto"))
    for verdicts in both(tmp_path / name, ctx):
        assert verdicts[name] == ([Code.PASSWORD_PROTECTED], ctx.townships[0].code)


def test_plain_archive_still_accepted(ctx, forms, tmp_path):
    archive = tmp_path / "plain.zip"
    archive.write_bytes(write_zip(list(forms.items())))
    for verdicts in both(archive, ctx):
        assert [codes for codes, _ in verdicts.values()] == [[], []]


# -- (b) flat OpenDocument --------------------------------------------------------------------------

NAMESPACES = "".join(f' xmlns:ns{k}="urn:example:{k}"' for k in range(60))      # LibreOffice writes ~40
FODS = (f'<?xml version="1.0" encoding="UTF-8"?>\n<office:document{NAMESPACES} office:version="1.3" '
        'office:mimetype="application/vnd.oasis.opendocument.spreadsheet"><office:body><office:spreadsheet>'
        '<table:table table:name="评分表"/></office:spreadsheet></office:body></office:document>').encode()


def test_fods_is_refused_with_f109_not_skipped(ctx, tmp_path):
    t = ctx.townships[2]
    folder = tmp_path / "returns"
    folder.mkdir()
    (folder / f"2026_{t.code}_{t.name}.fods").write_bytes(FODS)
    (folder / "不知道是谁.fods").write_bytes(FODS + b"<!-- another -->")
    (folder / "text.fods").write_bytes(FODS.replace(b"spreadsheet\"", b"text\""))   # not a spreadsheet inside
    for verdicts in both(folder, ctx):
        assert verdicts[f"2026_{t.code}_{t.name}.fods"] == ([Code.UNSUPPORTED_FORMAT], t.code)
        assert verdicts["不知道是谁.fods"] == ([Code.UNSUPPORTED_FORMAT], None)
        assert verdicts["text.fods"] == ([Code.NOT_A_WORKBOOK], None)


def test_fods_in_an_archive_and_by_content_whatever_its_name(ctx, tmp_path):
    t = ctx.townships[3]
    archive = tmp_path / "returns.zip"
    archive.write_bytes(write_zip([(f"{t.name}.fods", FODS)]))
    renamed = tmp_path / f"{t.name}.xlsx"
    renamed.write_bytes(b"\xef\xbb\xbf  " + FODS)
    for verdicts in both(archive, ctx) + both(renamed, ctx):
        assert list(verdicts.values()) == [([Code.UNSUPPORTED_FORMAT], t.code)]


def test_fods_libreoffice_saved(ctx, forms, tmp_path):
    needs_libreoffice()
    name, blob = next(iter(forms.items()))
    (tmp_path / name).write_bytes(blob)
    saved = lo.convert(tmp_path / name, tmp_path / "saved", "fods")
    assert flat_opendocument(saved.read_bytes()) == "spreadsheet"
    for verdicts in both(saved, ctx):
        assert verdicts == {saved.name: ([Code.UNSUPPORTED_FORMAT], ctx.townships[0].code)}


# -- (c) the work one archive may cost --------------------------------------------------------------

def zero_bomb(mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of `mib` MiB of zeros (one compressed MiB repeated), and its CRC-32."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * MiB) + c.flush(zlib.Z_FULL_FLUSH)
    return block * mib + b"\x03\x00", zlib.crc32(b"\0" * (mib * MiB))


def raw_zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip of members given already deflated: (name, deflate data, crc, inflated size)."""
    out, central = bytearray(), bytearray()
    for name, payload, crc, size in members:
        encoded, offset = name.encode(), len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(payload), size,
                           len(encoded), 0) + encoded + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(payload), size,
                               len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    start, n = len(out), len(members)
    return bytes(out + central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), start, 0))


def timed(path: Path, ctx) -> tuple[list, float, float]:
    began = time.monotonic()
    coll = check_files([path], ctx, workers=1)
    lib = time.monotonic() - began
    began = time.monotonic()
    report = cli_check(path)
    cli = time.monotonic() - began
    print(f"{path.name}: check_files {lib:.2f} s, CLI {cli:.2f} s")
    return [lib_verdicts(coll), cli_verdicts(report)], lib, cli


def test_archive_of_400_small_bombs_refused_in_seconds(ctx, tmp_path):
    """Each member 19 MiB of zeros (under the one-file limit), 7.4 GiB in all: was 17-50 s. Refused as a
    whole on its declared bytes (each member alone would be on its ratio)."""
    payload, crc = zero_bomb(19)
    archive = tmp_path / "bombs.zip"
    archive.write_bytes(raw_zip([(f"2026_{k:03d}.xlsx", payload, crc, 19 * MiB) for k in range(400)]))
    verdicts, lib, cli = timed(archive, ctx)
    for v in verdicts:
        assert list(v.values()) == [([Code.DECOMPRESSION_BOMB], None)]
    assert lib < 10 and cli < 10


def test_archive_of_400_workbooks_each_under_the_limits_refused_in_seconds(ctx, forms, tmp_path):
    """Each member a workbook whose picture inflates to 8 MiB at under 200:1 (each alone is read, in
    some 0.3 s): 400 of them were minutes of work."""
    base = next(iter(forms.values()))
    with zipfile.ZipFile(io.BytesIO(base)) as zf:
        parts = [(i.filename, zf.read(i)) for i in zf.infolist()]
    noise = bytes((k * 7919 + (k >> 9) * 31) & 0xFF for k in range(4096))
    picture = zlib.compressobj(6, zlib.DEFLATED, -15)
    pixels = noise * (8 * 256)
    packed = picture.compress(pixels) + picture.flush()
    assert 8 * MiB < len(packed) * 200                    # under the one-file ratio limit
    image = ("xl/media/image1.png", packed, zlib.crc32(pixels), len(pixels))
    deflated = []
    for name, data in parts:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        deflated.append((name, c.compress(data) + c.flush(), zlib.crc32(data), len(data)))
    members = [(f"book{k}.xlsx", raw_zip(deflated + [image])) for k in range(400)]
    archive = tmp_path / "heavy.zip"
    archive.write_bytes(write_zip(members))
    verdicts, lib, cli = timed(archive, ctx)
    for v in verdicts:
        assert list(v.values()) == [([Code.DECOMPRESSION_BOMB], None)]
    assert lib < 10 and cli < 10


def test_limits_count_members_bytes_ratio_and_time(ctx, forms, tmp_path, monkeypatch):
    many = tmp_path / "many.zip"
    many.write_bytes(write_zip([(f"{k}.xlsx", b"x") for k in range(collect.MAX_ARCHIVE_MEMBERS + 1)]))
    name, blob = next(iter(forms.items()))
    slow = tmp_path / "slow.zip"
    slow.write_bytes(write_zip([(name, blob)]))
    for path in (many, slow):
        if path is slow:
            monkeypatch.setattr(collect, "MAX_ARCHIVE_SECONDS", -1.0)
        coll = check_files([path], ctx, workers=1)
        assert [[i.code for i in r.report] for r in coll.results] == [[Code.DECOMPRESSION_BOMB]]
        assert coll.summary()["received"] == 1


def test_one_bomb_member_costs_only_itself(ctx, forms, tmp_path):
    payload, crc = zero_bomb(19)
    name, blob = next(iter(forms.items()))
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    good = c.compress(blob) + c.flush()
    archive = tmp_path / "mixed.zip"
    archive.write_bytes(raw_zip([(name, good, zlib.crc32(blob), len(blob)), ("bomb.xlsx", payload, crc, 19 * MiB)]))
    for verdicts in both(archive, ctx):
        assert verdicts[name][0] == []
        assert verdicts["bomb.xlsx"][0] == [Code.DECOMPRESSION_BOMB]
