"""A round (考核轮次) on disk: the folder `init` makes and every command inside it finds.

    DIR/
      考核设置.xlsx        the setup the clerk edits: 评分细则, 乡镇名单, 考核参数, 说明
      下发/               the forms `generate` writes
      收回/               where the clerk puts what townships send (files, folders, zips)
      结果/               核查结果.xlsx, 排名.xlsx, 排名.csv
      .xlsx-assess/       the round's own: round.json (its marker), ledger.sqlite, files/ (every file
                          received, by content), rubrics/ (every rubric version forms were made from)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SETUP_BOOK = "考核设置.xlsx"
SENT, RETURNED, RESULTS = "下发", "收回", "结果"
RANKING_BOOK = "排名.xlsx"            # in 结果/
STATE_DIR = ".xlsx-assess"
MARKER = "round.json"


@dataclass(frozen=True)
class Round:
    root: Path

    @property
    def setup(self) -> Path:
        return self.root / SETUP_BOOK

    @property
    def sent(self) -> Path:
        return self.root / SENT

    @property
    def returned(self) -> Path:
        return self.root / RETURNED

    @property
    def results(self) -> Path:
        return self.root / RESULTS

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def marker(self) -> Path:
        return self.state / MARKER

    @property
    def ledger(self) -> Path:
        return self.state / "ledger.sqlite"

    @property
    def files(self) -> Path:
        return self.state / "files"

    @property
    def rubrics(self) -> Path:
        return self.state / "rubrics"


def find_round(start: str | Path | None = None) -> Round | None:
    """The round holding `start` (default: the current folder): that folder or its nearest parent with
    a round's marker; None outside any round."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / STATE_DIR / MARKER).is_file():
            return Round(folder)
    return None
