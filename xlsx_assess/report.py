"""Plain-data views of a check or a ranking: the `--json` shapes, and the library's return values."""

from __future__ import annotations

from .collect import Collection
from .ranking import Ranking


def collection_json(coll: Collection) -> dict:
    return {
        "files": [{
            "path": r.name,
            "township_code": r.township.code if r.township else None,
            "township": r.township.name if r.township else None,
            "status": r.status,
            "role": r.role,
            "accepted": r.accepted,
            "final": r.scores.final if r.scores and r.accepted else None,
            "issues": [i.as_dict() for i in r.report],
        } for r in coll.results],
        "skipped": [{"path": s.name, "reason": s.reason} for s in coll.skipped],
        "missing": [{"code": t.code, "township": t.name} for t in coll.missing],
        "summary": coll.summary(),
    }


def ranking_json(rk: Ranking, coll: Collection) -> dict:
    ranking = [{
        "rank": int(row["排名"]), "code": row["乡镇代码"], "township": row["乡镇"], "base": float(row["基础得分"]),
        "bonus": float(row["加分"]), "deduction": float(row["减分"]), "final": float(row["最终得分"]),
        "grade": row["等次"], "zeroed": bool(row["归零"]),
        **({"self_final": float(row["自评得分"]), "reviewed_final": _number(row["核定得分"]),
            "verified": row["核定情况"] == "已核定"} if "核定得分" in row else {}),
    } for row in rk.ranking.to_dict("records")]
    excluded = [{
        "path": r.name,
        "township_code": r.township.code if r.township else None,
        "reasons": [i.code for i in r.report.errors] or [r.role],
    } for r in coll.excluded]
    excluded += [{"path": s.name, "township_code": None, "reasons": ["skipped"]} for s in coll.skipped]
    return {"ranking": ranking, "excluded": excluded,
            "missing": [{"code": t.code, "township": t.name} for t in coll.missing]}


def _number(v) -> float | None:
    """A score of a table, None where it is blank (NaN)."""
    return None if v is None or v != v else float(v)
