"""xlsx-assess: rubric → locked township workbooks → checked returns → county ranking.

The library does the work and returns data; `cli` only renders it. Its heavy libraries (xlsxwriter,
pandas, python-calamine, and rich for the command line) are imported inside the functions that need
them, and the names below are resolved on first use, so `import xlsx_assess` stays instant and
`xlsx-assess check` never imports pandas.

    import xlsx_assess as xa
    ctx = xa.load_context()                       # bundled Taiqian rubric, roster and settings
    xa.generate_workbooks("dist", ctx)
    coll = xa.check_files(["returned/"], ctx)     # a Collection of FileResults with issues
    ranking = xa.rank_townships(coll, ctx)        # pandas DataFrames
    xa.write_ranking(ranking, "排名.xlsx")
"""

__version__ = "0.1.0"

_EXPORTS = {
    "load_rubric": "rubric", "read_rubric": "rubric", "parse_rubric": "rubric", "Rubric": "rubric", "Item": "rubric",
    "load_settings": "settings", "load_townships": "settings", "Settings": "settings", "Township": "settings",
    "build_workbook": "writer", "read_returned": "reader", "check_returned": "checks", "Context": "checks",
    "rank_townships": "ranking", "write_ranking": "ranking", "score": "scoring",
    "load_context": "workflow", "generate_workbooks": "workflow", "check_files": "workflow", "rank_files": "workflow",
    "Issue": "issues", "Report": "issues", "AssessError": "issues", "CATALOGUE": "issues",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'xlsx_assess' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
