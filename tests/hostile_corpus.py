"""A corpus of returned files from hostile and careless hands, built by script (no binary fixtures).

`build(folder)` writes every case of the "survive whatever comes back" issue into `folder`, next to
good files that must still be ranked, and returns a `Corpus`: for every file (relative to `folder`,
archive members as ``"collection/returns.zip › member"``) what it must be reported with — a bare code
("F103": anywhere in the file) or a located one (("S303", "评分表", "F9")) — the files that must be
skipped, and for every township that must be ranked its final score. `build_corpus(folder)` returns
just the first of those.

The rubric and settings are the bundled Taiqian ones; the roster is the bundled 9 townships plus one
made-up township per case (so cases never supersede or copy each other by accident) and 500 for the
bulk folder. `Corpus.context()` and `Corpus.write_roster(path)` give that roster to the library and CLI.

LibreOffice makes everything a person (or an office suite) would make: filled, tampered, encrypted,
.xls/.ods, a PDF and a Word file. Zip and XML surgery makes the rest (bombs, active content, ...).
Without LibreOffice, `build(folder, with_libreoffice=False)` leaves those cases out.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from conftest import sheet_part as _sheet_part
from fills import full_marks, write_roster

from xlsx_assess import scoring
from xlsx_assess.checks import Context
from xlsx_assess.layout import (COL_CRITERION, COL_POINTS, FORM_SHEET, GUIDE_SHEET, META_SHEET, a1, entry_cells,
                                form_id, form_layout)
from xlsx_assess.rubric import Rubric, load_rubric
from xlsx_assess.settings import Settings, Township, load_settings, load_townships
from xlsx_assess.writer import build_workbook, file_name

SEED = 20270105
BULK = 500
MiB = 1 << 20
BOMB_MIB = 3 * 1024                 # 3 GiB of zeros in ~3 MB (no zip64 needed below 4 GiB)
ARROW = " › "
INJECTIONS = ("=HYPERLINK(\"http://example.com\",\"点我\")", "+1+1", "-2+3", "@SUM(1,2)")


@dataclass
class Corpus:
    folder: Path
    rubric: Rubric
    settings: Settings
    roster: list[Township]
    expected: dict[str, set] = field(default_factory=dict)        # file -> codes it must carry (bare or located)
    ranked: dict[str, float] = field(default_factory=dict)        # township code -> final score
    ranked_files: dict[str, str] = field(default_factory=dict)    # file -> township code, for files to be ranked
    skipped: set[str] = field(default_factory=set)                # files that must be skipped

    def context(self) -> Context:
        return Context(self.rubric, self.settings, self.roster)

    def write_roster(self, path: str | Path) -> Path:
        return write_roster(self.roster, path)


def build_corpus(folder: str | Path) -> dict[str, set]:
    return build(folder).expected


def build(folder: str | Path, with_libreoffice: bool = True, bulk: int = BULK) -> Corpus:
    """Write the corpus into `folder` (`bulk`: how many files the folder of many files holds)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hostile-src-") as scratch:
        return _Builder(folder, Path(scratch), with_libreoffice, bulk).run()


# -- the builder ------------------------------------------------------------------------------------

class _Builder:
    def __init__(self, folder: Path, scratch: Path, with_libreoffice: bool, bulk: int):
        self.folder, self.scratch, self.lo = folder, scratch, with_libreoffice
        self.rubric, self.settings = load_rubric(), load_settings()
        self.good_towns = load_townships()
        self.case_towns = [Township(f"410928{k:03d}", f"案例{k:02d}乡", "乡") for k in range(1, 61)]
        self.bulk_towns = [Township(f"410929{k:03d}", f"批量{k:03d}镇", "镇") for k in range(bulk)]
        self.corpus = Corpus(folder, self.rubric, self.settings, self.good_towns + self.case_towns + self.bulk_towns)
        self.rng = random.Random(SEED)
        self.jobs: list[dict] = []                                # LibreOffice jobs, run in one session at the end
        self._free = iter(self.case_towns)
        self.lay = {}

    # .. helpers ..
    def town(self) -> Township:
        return next(self._free)

    def layout(self, t: Township):
        if t.code not in self.lay:
            self.lay[t.code] = form_layout(self.rubric, t, self.settings)
        return self.lay[t.code]

    def values(self) -> dict[str, float]:
        """Valid scores a township might enter: distinct per call, so no two files are copies."""
        out = {}
        for item in self.rubric.items:
            if item.kind == "zero":
                continue
            choice = self.rng.random()
            out[item.id] = item.points if choice < 0.4 else 0.0 if choice < 0.5 else round(
                self.rng.uniform(0, item.points) * 4) / 4
        return out

    def final(self, values: dict, zeroed: bool = False) -> float:
        return scoring.score(self.rubric, values, zeroed, self.settings).final

    def expect(self, name: str, *codes, ranked: tuple[Township, float] | None = None) -> None:
        """`name` must carry `codes` (bare or (code, sheet, cell)); with `ranked`, it is that township's ranked file."""
        self.corpus.expected[name] = set(codes)
        if ranked is not None:
            self.corpus.ranked_files[name] = ranked[0].code
            self.corpus.ranked[ranked[0].code] = ranked[1]

    def path(self, name: str) -> Path:
        p = self.folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def written(self, t: Township, values: dict | None = None, zeroed: bool | None = False, notes=None,
                name: str | None = None, where: Path | None = None, settings: Settings | None = None,
                rubric: Rubric | None = None) -> Path:
        """A form filled by our writer (cached totals right), as if typed into Excel."""
        rubric, settings = rubric or self.rubric, settings or self.settings
        lay = form_layout(rubric, t, settings)
        entries = entry_cells(lay, values, zeroed, notes, None, "张三", "0393-1234567")
        target = (where or self.scratch) / (name or file_name(t, settings.year))
        target.parent.mkdir(parents=True, exist_ok=True)
        return build_workbook(rubric, t, settings, target, entries=entries)

    def blank(self, t: Township) -> Path:
        return build_workbook(self.rubric, t, self.settings, self.scratch / "blank" / file_name(t, self.settings.year))

    def fill_sets(self, t: Township, values: dict, zeroed: bool | None = False) -> list:
        lay = self.layout(t)
        sets = [[FORM_SHEET, lay.score_cell(i), v] for i, v in values.items() if v is not None]
        if zeroed is not None:
            sets.append([FORM_SHEET, lay.score_cell(self.rubric.zero.id), scoring.YES if zeroed else scoring.NO])
        return sets + [[FORM_SHEET, lay.reporter_cell, "李四"], [FORM_SHEET, lay.phone_cell, "0393-7654321"]]

    def libreoffice(self, name: str, t: Township | None, values: dict | None = None, sets=(), ops=(), fmt="xlsx",
                    password: str | None = None, source: Path | None = None, zeroed: bool | None = False) -> None:
        """Queue a LibreOffice job: open (a blank form of `t`), fill, edit, save into the corpus as `name`."""
        if not self.lo:
            return
        src = source or self.blank(t)
        job = {"in": str(src), "out": str(self.path(name)), "format": fmt,
               "set": (self.fill_sets(t, values, zeroed) if values is not None else []) + list(sets),
               "ops": list(ops)}
        if password:
            job["password"] = password
        self.jobs.append(job)

    def run(self) -> Corpus:
        self.good_files()
        self.not_workbooks()
        self.passwords()
        self.other_formats()
        self.active_content()
        self.bombs()
        self.tampering()
        self.input_abuse()
        self.collection()
        self.bulk()
        if self.jobs:
            import lo

            for job, res in zip(self.jobs, lo.run_jobs(self.jobs, timeout=900)):
                if not res.get("ok"):
                    raise RuntimeError(f"LibreOffice could not make {job['out']}: {res.get('error')}")
        c = self.corpus        # without LibreOffice, the cases it would have made are left out
        c.expected = {k: v for k, v in c.expected.items() if ARROW in k or (self.folder / k).exists()}
        c.ranked_files = {k: v for k, v in c.ranked_files.items() if k in c.expected}
        c.ranked = {code: final for code, final in c.ranked.items() if code in c.ranked_files.values()}
        return c

    # .. good files: the 9 real townships, some typed with our writer, some filled in LibreOffice ..
    def good_files(self) -> None:
        for k, t in enumerate(self.good_towns):
            values, zeroed = self.values(), k == 3          # one township marked the zero-out line
            name = f"good/{file_name(t, self.settings.year)}"
            codes = ("V413",) if zeroed else ()
            if k % 2 and self.lo:
                self.libreoffice(name, t, values, zeroed=zeroed)
            else:
                self.written(t, values, zeroed, name=name, where=self.folder)
            self.expect(name, *codes, ranked=(t, self.final(values, zeroed)))
        self.good = self.folder / "good" / file_name(self.good_towns[0], self.settings.year)

    # .. not a workbook ..
    def not_workbooks(self) -> None:
        self.path("not_workbook/empty.xlsx").write_bytes(b"")
        self.expect("not_workbook/empty.xlsx", "F102")
        data = self.good.read_bytes()
        self.path("not_workbook/truncated.xlsx").write_bytes(data[:len(data) * 3 // 5])
        self.expect("not_workbook/truncated.xlsx", "F104")
        self.path("not_workbook/photo.xlsx").write_bytes(_png(64, 48))
        self.expect("not_workbook/photo.xlsx", "F103")
        self.path("not_workbook/letter.xlsx").write_bytes(_docx("关于报送考核表的函"))
        self.expect("not_workbook/letter.xlsx", "F103")
        rows = "".join(f"<tr><td>{i.id}</td><td>{i.points}</td></tr>" for i in self.rubric.items[:5])
        self.path("not_workbook/web_export.xls").write_text(
            f"<html><head><meta charset='utf-8'></head><body><table>{rows}</table></body></html>", encoding="utf-8")
        self.expect("not_workbook/web_export.xls", "F103")
        self.path("not_workbook/export.xlsx").write_text(
            "编号,得分\n" + "".join(f"{i.id},{i.points}\n" for i in self.rubric.items), encoding="gbk")
        self.expect("not_workbook/export.xlsx", "F103")
        self.path("not_workbook/letter_word97.xls").write_bytes(_ole({   # a Word 97 file: its FIB starts 0xA5EC
            "WordDocument": struct.pack("<HH", 0xA5EC, 0x00C1) + b"\0" * 4092, "1Table": b"\0" * 4096}))
        self.expect("not_workbook/letter_word97.xls", "F103")
        if self.lo:
            self.libreoffice("not_workbook/scan.pdf.xlsx", None, source=self.good, fmt="pdf")
            self.expect("not_workbook/scan.pdf.xlsx", "F103")

    # .. password ..
    def passwords(self) -> None:
        for fmt in ("xlsx", "xls"):
            t = self.town()
            name = f"password/encrypted.{fmt}"
            self.libreoffice(name, t, self.values(), fmt=fmt, password="township2026")
            self.expect(name, "F105")

    # .. other formats ..
    def other_formats(self) -> None:
        for fmt in ("xls", "ods"):
            t, values = self.town(), self.values()
            self.libreoffice(f"formats/form.{fmt}", t, values, fmt=fmt)
            self.expect(f"formats/form.{fmt}", "F110", ranked=(t, self.final(values)))
        t, values = self.town(), self.values()
        self.libreoffice("formats/wps_form.et", t, values, fmt="xls")
        self.expect("formats/wps_form.et", "F109")
        self.path("formats/unknown_office97.xls").write_bytes(_ole({"Contents": b"\x01" * 4096}))
        self.expect("formats/unknown_office97.xls", "F109")
        members = _members(self.good)
        members = [(n, b) for n, b in members if n != "xl/workbook.xml"] + [("xl/workbook.bin", b"\x83\x01\x00")]
        _write_zip(self.path("formats/binary.xlsb"), members)
        self.expect("formats/binary.xlsb", "F109")

    # .. active content: values read, nothing run, a warning naming it ..
    def active_content(self) -> None:
        extras = {
            "macro.xlsm": [("xl/vbaProject.bin", _ole_stub())],
            "external_link.xlsx": [("xl/externalLinks/externalLink1.xml",
                                    b'<?xml version="1.0"?><externalLink xmlns="http://schemas.openxmlformats.org/'
                                    b'spreadsheetml/2006/main"><externalBook r:id="rId1"/></externalLink>')],
            "embedded.xlsx": [("xl/embeddings/oleObject1.bin", _ole_stub())],
            "activex.xlsx": [("xl/activeX/activeX1.xml", b'<?xml version="1.0"?><ax:ocx ax:classid="{8BD21D40-EC42-'
                                                          b'11CE-9E0D-00AA006002F3}" xmlns:ax="http://schemas.'
                                                          b'microsoft.com/office/2006/activeX"/>'),
                             ("xl/activeX/activeX1.bin", _ole_stub())],
        }
        for name, added in extras.items():
            t, values = self.town(), self.values()
            src = self.written(t, values)
            members = _members(src)
            if name.endswith(".xlsm"):
                members = [(n, b.replace(b"spreadsheetml.sheet.main+xml", b"sheet.macroEnabled.main+xml")
                            if n == "[Content_Types].xml" else b) for n, b in members]
            _write_zip(self.path(f"active/{name}"), members + added)
            self.expect(f"active/{name}", "F111", ranked=(t, self.final(values)))

    # .. bombs: rejected in seconds with bounded memory, before any full parse ..
    def bombs(self) -> None:
        base = _members(self.good)
        kernel, crc = _zero_deflate(BOMB_MIB)
        bomb = ("xl/media/image1.png", kernel, crc, BOMB_MIB * MiB)
        _write_zip(self.path("bombs/zip_bomb.xlsx"), base, raw=[bomb])
        self.expect("bombs/zip_bomb.xlsx", "F107")
        _write_zip(self.path("bombs/size_lies.xlsx"), base, raw=[bomb], declare=1234)
        self.expect("bombs/size_lies.xlsx", "F107")
        lol = ('<!DOCTYPE lolz [<!ENTITY lol "lol">' + "".join(
            f'<!ENTITY lol{k} "{("&lol" + (str(k - 1) if k > 1 else "") + ";") * 10}">' for k in range(1, 10)) + "]>")
        sheet = _sheet_part(self.good, FORM_SHEET)
        for name, part in (("billion_laughs_sheet.xlsx", sheet), ("billion_laughs_strings.xlsx", "xl/sharedStrings.xml")):
            members = [(n, _after_declaration(b, lol.encode()) if n == part else b) for n, b in base]
            _write_zip(self.path(f"bombs/{name}"), members)
            self.expect(f"bombs/{name}", "F108")
        members = [(n, ('<?xml version="1.0" encoding="UTF-16"?>' + lol + b.decode("utf-8").split("?>", 1)[1])
                    .encode("utf-16") if n == "xl/sharedStrings.xml" else b) for n, b in base]
        _write_zip(self.path("bombs/utf16_entities.xlsx"), members)
        self.expect("bombs/utf16_entities.xlsx", "F108")
        far = b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>'
        _write_zip(self.path("bombs/far_cell.xlsx"), [(n, b.replace(b"</sheetData>", far) if n == sheet else b)
                                                      for n, b in base])
        self.expect("bombs/far_cell.xlsx", "F114")
        tangle = b'<row r="90"><c r="A90">' + b'<c r="A90"><f>' * 60_000 + b"</sheetData>"   # < 1 MB: no ratio alarm
        _write_zip(self.path("bombs/tangled_xml.xlsx"), [(n, b.replace(b"</sheetData>", tangle) if n == sheet else b)
                                                         for n, b in base])
        self.expect("bombs/tangled_xml.xlsx", "F104")
        _write_zip(self.path("bombs/many_parts.xlsx"), base + [(f"xl/media/p{k}.bin", b"") for k in range(2001)])
        self.expect("bombs/many_parts.xlsx", "F107")
        big = self.path("bombs/too_big.xlsx")
        big.write_bytes(self.good.read_bytes())
        with open(big, "r+b") as fh:                       # sparse: 21 MB on paper, a few KB on disk
            fh.truncate(21 * MiB)
        self.expect("bombs/too_big.xlsx", "F106")
        for fmt, cell in (("xls", "IV65536"), ("ods", "AMJ1048576")):
            t = self.town()
            self.libreoffice(f"bombs/far_cell.{fmt}", t, self.values(), sets=[[FORM_SHEET, cell, 1]], fmt=fmt)
            self.expect(f"bombs/far_cell.{fmt}", "F114")

    # .. tampering, each reported with its sheet and cell ..
    def tampering(self) -> None:
        item = self.rubric.base[4]

        def case(name, *codes, sets=(), ops=(), accepted=False):
            t, values = self.town(), self.values()
            lay = self.layout(t)
            row = lay.item_rows[item.id]
            self.libreoffice(f"tamper/{name}", t, values, sets=sets(lay, row) if callable(sets) else sets,
                             ops=ops(lay, row) if callable(ops) else ops)
            self.expect(f"tamper/{name}", *(codes[0](lay, row) if callable(codes[0]) else codes),
                        ranked=(t, self.final(values)) if accepted else None)

        unprotected = lambda *ops: [["unprotect", FORM_SHEET, ""], *ops, ["protect", FORM_SHEET, ""]]  # noqa: E731
        case("points_changed.xlsx", lambda lay, r: [("S303", FORM_SHEET, a1(r, COL_POINTS))],
             sets=lambda lay, r: [[FORM_SHEET, a1(r, COL_POINTS), item.points * 2]])
        case("criterion_changed.xlsx", lambda lay, r: [("S303", FORM_SHEET, a1(r, COL_CRITERION))],
             sets=lambda lay, r: [[FORM_SHEET, a1(r, COL_CRITERION), "（已删除）"]])
        case("row_inserted.xlsx", lambda lay, r: [("S303", FORM_SHEET, a1(r, 0)), ("S309", FORM_SHEET, "")],
             ops=lambda lay, r: unprotected(["insert_rows", FORM_SHEET, r, 1]))
        case("row_deleted.xlsx", lambda lay, r: [("S303", FORM_SHEET, a1(r, 0)), ("S309", FORM_SHEET, "")],
             ops=lambda lay, r: unprotected(["remove_rows", FORM_SHEET, r, 1]))
        case("row_moved.xlsx", lambda lay, r: [("S303", FORM_SHEET, a1(r, 0))],
             ops=lambda lay, r: unprotected(["move_row", FORM_SHEET, r, r + 6]))
        case("sheet_renamed.xlsx", ("S301", FORM_SHEET, ""), ("S302", "考核表", ""),
             ops=[["rename_sheet", FORM_SHEET, "考核表"]])
        case("sheet_deleted.xlsx", ("S301", GUIDE_SHEET, ""), ops=[["remove_sheet", GUIDE_SHEET]])
        case("sheet_added.xlsx", ("S302", "Sheet2", ""), ops=[["add_sheet", "Sheet2"]], accepted=True)
        case("protection_removed.xlsx", ("S305", FORM_SHEET, ""), ops=[["unprotect", FORM_SHEET, ""]], accepted=True)
        case("identity_sheet_deleted.xlsx", ("S301", META_SHEET, ""), ops=[["remove_sheet", META_SHEET]])
        case("identity_removed.xlsx", ("I201", "", ""),
             ops=[["remove_sheet", META_SHEET], *(["remove_property", k] for k in
                                                 ("xa_form", "xa_township_code", "xa_township", "xa_year",
                                                  "xa_rubric_sha256", "xa_form_id", "xa_tool_version"))])
        other = self.town()                       # a township of the roster that sends nothing itself
        case("identity_edited.xlsx", lambda lay, r: [("I206", META_SHEET, ""), ("S303", FORM_SHEET, lay.township_cell)],
             ops=[["set_property", "xa_township_code", other.code], ["set_property", "xa_township", other.name]],
             sets=[[META_SHEET, "B3", other.code], [META_SHEET, "B4", other.name]])
        t = self.town()
        self.written(t, self.values(), settings=self.settings.with_year(self.settings.year - 1),
                     name="tamper/last_year.xlsx", where=self.folder)
        self.expect("tamper/last_year.xlsx", "I203")
        changed = dataclasses.replace(self.rubric, items=(dataclasses.replace(self.rubric.items[0], guide="旧版评分标准"),
                                                          *self.rubric.items[1:]))
        assert changed.fingerprint != self.rubric.fingerprint
        self.written(t, self.values(), rubric=changed, name="tamper/old_rubric.xlsx", where=self.folder)
        self.expect("tamper/old_rubric.xlsx", "I204")
        a, b, values = self.town(), self.town(), self.values()
        notes = {i.id: f"扣分原因{k}" for k, i in enumerate(self.rubric.base[:3])}
        self.written(a, values, notes=notes, name="tamper/copy_original.xlsx", where=self.folder)
        self.written(b, values, notes=notes, name="tamper/copy_of_another.xlsx", where=self.folder)
        self.expect("tamper/copy_original.xlsx", "C504")
        self.expect("tamper/copy_of_another.xlsx", "C504")

    # .. input abuse ..
    def input_abuse(self) -> None:
        item, long_item = [i for i in self.rubric.base if i.points >= 1][:2]    # long notes on a line of their own

        def case(name, raw, *codes, fmt="xlsx", parsed: float | None = None, note: str | None = None):
            """`raw` typed into a score cell (or `note` into its 扣分说明); `parsed`: what it must count as."""
            line = long_item if note is not None and len(note) > 32_767 else item
            t, values = self.town(), self.values()
            lay = self.layout(t)
            if note is None:
                where, values[line.id] = lay.score_cell(line.id), None
                sets = [[FORM_SHEET, where, raw]]
            else:
                where = lay.note_cell(line.id)
                sets = [[FORM_SHEET, where, note]]
            ranked = None
            if parsed is not None or note is not None:
                ranked = (t, self.final({**values, line.id: parsed} if parsed is not None else values))
            self.libreoffice(f"abuse/{name}", t, values, sets=sets, fmt=fmt)
            self.expect(f"abuse/{name}", *((c, FORM_SHEET, where) if c.startswith("V") else c for c in codes),
                        ranked=ranked)

        case("text_score.xlsx", "满分", "V402")
        case("formula_score.xlsx", {"formula": "=1+1"}, "V406")
        case("negative.xlsx", -1, "V403")
        case("over_max.xlsx", item.points + 1, "V403")
        case("date_score.xlsx", {"date": "2027-01-05"}, "V402")
        case("boolean_score.xlsx", {"bool": True}, "V402")
        case("div_by_zero.xlsx", {"formula": "=1/0"}, "V406")
        case("stray_spaces.xlsx", " 1 ", "V404", parsed=1.0)
        case("full_width.xlsx", "１．０", "V405", parsed=1.0)
        case("long_note.ods", None, "V411", "F110", fmt="ods", note="长" * 40_000)
        for k, text in enumerate(INJECTIONS):
            case(f"injection_{k}.xlsx", None, "V414", note=text)
        # an error value with no formula behind it (WPS pastes them so), and a note beyond 32,767 characters
        t, values = self.town(), self.values()
        lay = self.layout(t)
        values[item.id] = None
        src = self.written(t, {**values, item.id: 0.0})
        sheet = _sheet_part(src, FORM_SHEET)
        ref = lay.score_cell(item.id)
        _write_zip(self.path("abuse/error_value.xlsx"), [
            (n, re.sub(rf'<c r="{ref}"( s="\d+")?( t="n")?><v>0</v></c>'.encode(),
                       rf'<c r="{ref}"\1 t="e"><v>#DIV/0!</v></c>'.encode(), b) if n == sheet else b)
            for n, b in _members(src)])
        self.expect("abuse/error_value.xlsx", ("V412", FORM_SHEET, ref))
        t, values = self.town(), self.values()
        lay = self.layout(t)
        src = self.written(t, values, notes={long_item.id: "PLACEHOLDER"})
        _write_zip(self.path("abuse/long_note.xlsx"), [
            (n, b.replace(b"PLACEHOLDER", ("长" * 40_000).encode()) if n == "xl/sharedStrings.xml" else b)
            for n, b in _members(src)])
        self.expect("abuse/long_note.xlsx", ("V411", FORM_SHEET, lay.note_cell(long_item.id)),
                    ranked=(t, self.final(values)))

    # .. collection ..
    def collection(self) -> None:
        older_of = self.good_towns[1]             # filled in LibreOffice, so saved "now": the typed copy is older
        older = self.written(older_of, self.values(), name="collection/first_try.xlsx", where=self.folder)
        os.utime(older, (1_600_000_000, 1_600_000_000))
        self.expect("collection/first_try.xlsx", "C501")
        self.path("resent/copy_of_good.xlsx").write_bytes(self.good.read_bytes())   # sorts after good/: the copy
        self.expect("resent/copy_of_good.xlsx", "C502")
        for name, data in (("~$考核表.xlsx", b"\x04lock"), (".~lock.考核表.xlsx#", b"lock"), ("Thumbs.db", b"\0" * 64),
                           (".DS_Store", b"\0Bud1"), ("desktop.ini", b"[.ShellClassInfo]"), ("说明.txt", "请查收".encode()),
                           ("照片.jpg", _png(8, 8)), ("备份.rar", b"Rar!\x1a\x07\x00"),
                           (".排名.k2j3h4.xlsx", b"PK\x03\x04partial")):
            self.path(f"collection/{name}").write_bytes(data)
            self.corpus.skipped.add(f"collection/{name}")
        self.path("collection/not_a_zip.zip").write_bytes(b"Rar!\x1a\x07\x00" + b"\0" * 100)
        self.expect("collection/not_a_zip.zip", "F103")
        # an archive from Chinese Windows: GBK names, a Mac's droppings, a zip inside, one damaged member
        gbk_town, inner_town = self.town(), self.town()
        gbk_values, inner_values = self.values(), self.values()
        gbk_file = self.written(gbk_town, gbk_values)
        inner_zip = self.scratch / "inner.zip"
        with zipfile.ZipFile(inner_zip, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("乡镇考核表.xlsx", self.written(inner_town, inner_values).read_bytes())
        damaged = self.written(self.town(), self.values()).read_bytes()
        archive = self.path("collection/returns.zip")
        names = {"gbk": f"{gbk_town.name}考核表.xlsx", "inner": "再压缩.zip", "bad": "损坏.xlsx"}
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for k, (key, blob) in enumerate((("gbk", gbk_file.read_bytes()), ("inner", inner_zip.read_bytes()),
                                             ("bad", damaged))):
                zf.writestr(_gbk_placeholder(names[key], "XYZ"[k]), blob)
            zf.writestr("__MACOSX/._考核表.xlsx", b"\0\x05\x16\x07")
        data = archive.read_bytes()
        for k, text in enumerate(names.values()):
            data = data.replace(_gbk_placeholder(text, "XYZ"[k]).encode(), text.encode("gbk"))
        archive.write_bytes(_corrupt_member(data, names["bad"].encode("gbk")))
        self.expect(f"collection/returns.zip{ARROW}{names['gbk']}", ranked=(gbk_town, self.final(gbk_values)))
        self.expect(f"collection/returns.zip{ARROW}{names['inner']}{ARROW}乡镇考核表.xlsx",
                    ranked=(inner_town, self.final(inner_values)))
        self.expect(f"collection/returns.zip{ARROW}{names['bad']}", "F104")
        self.corpus.skipped.add(f"collection/returns.zip{ARROW}__MACOSX/._考核表.xlsx")
        # three levels: the innermost archive is not opened
        deep = self.scratch / "deep"
        deep.mkdir()
        with zipfile.ZipFile(deep / "inner.zip", "w") as zf:
            zf.writestr("form.xlsx", gbk_file.read_bytes())
        with zipfile.ZipFile(deep / "mid.zip", "w") as zf:
            zf.write(deep / "inner.zip", "inner.zip")
        with zipfile.ZipFile(self.path("collection/nested_deep.zip"), "w") as zf:
            zf.write(deep / "mid.zip", "mid.zip")
        self.expect(f"collection/nested_deep.zip{ARROW}mid.zip{ARROW}inner.zip", "F113")

    # .. a folder of 500 files, one township each: our writer once per value set, identities by surgery ..
    def bulk(self) -> None:
        base_town = Township("410929999", "样板镇", "镇")
        sets = [full_marks(self.rubric)]
        for k in range(4):                         # two partial lines at most: not "distinctive", so no C504
            v = dict(sets[0])
            for item in self.rubric.base[k * 2:k * 2 + 2]:
                v[item.id] = item.points / 2
            sets.append(v)
        bases = [_members(self.written(base_town, v, name=f"bulk_base{k}.xlsx")) for k, v in enumerate(sets)]
        old_id = form_id(self.rubric, base_town, self.settings.year).encode()
        for k, t in enumerate(self.bulk_towns):
            swap = ((base_town.code.encode(), t.code.encode()), (base_town.name.encode(), t.name.encode()),
                    (old_id, form_id(self.rubric, t, self.settings.year).encode()))
            members = []
            for n, b in bases[k % len(bases)]:
                for old, new in swap:
                    b = b.replace(old, new)
                members.append((n, b))
            name = f"bulk/{k:03d}.xlsx"
            _write_zip(self.path(name), members)
            self.expect(name, ranked=(t, self.final(sets[k % len(sets)])))


# -- bytes made by hand -------------------------------------------------------------------------------

def _members(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def _after_declaration(xml: bytes, insert: bytes) -> bytes:
    head, _, rest = xml.partition(b"?>")
    return head + b"?>" + insert + rest


def _write_zip(path: Path, members: list[tuple[str, bytes]], raw: list[tuple[str, bytes, int, int]] = (),
               declare: int | None = None) -> Path:
    """A zip written by hand: deflated members, then `raw` ones given as (name, deflate data, crc, size);
    `declare` replaces the inflated size the raw members claim (a lie)."""
    out, central = bytearray(), bytearray()
    entries = []
    for name, data in members:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        entries.append((name, c.compress(data) + c.flush(), zlib.crc32(data), len(data), len(data)))
    for name, payload, crc, size in raw:
        entries.append((name, payload, crc, size, declare if declare is not None else size))
    for name, payload, crc, size, declared in entries:
        encoded = name.encode("utf-8")
        flags = 0x800 if not name.isascii() else 0
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 8, 0, 0x21, crc, len(payload), declared,
                           len(encoded), 0) + encoded
        out += payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, 8, 0, 0x21, crc, len(payload),
                               declared, len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    start = len(out)
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), start, 0)
    path.write_bytes(bytes(out))
    return path


def _zero_deflate(mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of `mib` MiB of zeros, made from one compressed MiB repeated, and its CRC-32."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * MiB) + c.flush(zlib.Z_FULL_FLUSH)     # byte-aligned, no history: repeatable
    crc, step, step_crc = 0, 1, zlib.crc32(b"\0" * MiB)
    remaining = mib
    while remaining:                                                # CRC by doubling, no need to touch 3 GiB
        if remaining & 1:
            crc = _crc32_combine(crc, step_crc, step * MiB)
        step_crc = _crc32_combine(step_crc, step_crc, step * MiB)
        step, remaining = step * 2, remaining >> 1
    return block * mib + b"\x03\x00", crc


def _crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """zlib's crc32_combine: the CRC of A+B from those of A and B and the length of B."""
    def times(mat, vec):
        s, i = 0, 0
        while vec:
            if vec & 1:
                s ^= mat[i]
            vec, i = vec >> 1, i + 1
        return s

    def square(mat):
        return [times(mat, mat[n]) for n in range(32)]

    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]
    even = square(odd)
    odd = square(even)
    while True:
        even = square(odd)
        if len2 & 1:
            crc1 = times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = square(even)
        if len2 & 1:
            crc1 = times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\0" + b"".join(bytes((x * 4 % 256, y * 5 % 256, 128)) for x in range(width))
                   for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _docx(text: str) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
                    'package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/'
                    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
        zf.writestr("word/document.xml", '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
                    f'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>')
    return buf.getvalue()


def _ole(streams: dict[str, bytes]) -> bytes:
    """A minimal compound file (MS-CFB v3, 512-byte sectors) holding `streams` (each at least 4096 bytes)."""
    end, free, fat_sect, none = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF
    fat, data, entries = [fat_sect, end], b"", []
    for k, (name, blob) in enumerate(streams.items()):
        blob += b"\0" * (-len(blob) % 512)
        first, count = len(fat), len(blob) // 512
        fat += [first + i + 1 for i in range(count - 1)] + [end]
        data += blob
        entries.append((name, 2, none, k + 2 if k + 1 < len(streams) else none, none, first, len(blob)))
    assert len(fat) <= 128 and len(entries) <= 3

    def entry(name, kind, left, right, child, start, size):
        encoded = name.encode("utf-16-le") + b"\0\0"
        return (encoded.ljust(64, b"\0") + struct.pack("<HBBIII", len(encoded), kind, 1, left, right, child)
                + b"\0" * 36 + struct.pack("<IQ", start, size))

    directory = entry("Root Entry", 5, none, none, 1, end, 0) + b"".join(entry(*e) for e in entries)
    directory = directory.ljust(512, b"\0")
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
              + b"\0" * 6 + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, end, 0, end, 0)
              + struct.pack("<109I", 0, *[free] * 108))
    return header + struct.pack("<128I", *(fat + [free] * (128 - len(fat)))) + directory + data


def _ole_stub() -> bytes:
    """A small Office 97 container, as a vbaProject.bin, oleObject.bin or activeX.bin is."""
    return _ole({"_VBA_PROJECT": b"\xcc\x61" + b"\0" * 4094})


def _gbk_placeholder(name: str, fill: str) -> str:
    """An ASCII stand-in as long as the GBK bytes of `name` (Python would flag a non-ASCII name as UTF-8)."""
    suffix = "." + name.rsplit(".", 1)[1]
    return fill * (len(name.encode("gbk")) - len(suffix)) + suffix


def _corrupt_member(data: bytes, name: bytes) -> bytes:
    """Flip bytes in the middle of one member's compressed data (its CRC no longer matches)."""
    at = data.index(name) + len(name) + 200
    return data[:at] + bytes(b ^ 0x5A for b in data[at:at + 16]) + data[at + 16:]
