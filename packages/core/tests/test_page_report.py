"""write_page_report: a report that is not a scores-table audit, written all or nothing."""

import json

import pytest
from privaudit.core.report import ReportSection, write_page_report

PNG = b"\x89PNG\r\n\x1a\n fake"


def test_page_report_writes_json_html_images_and_files(tmp_path):
    out = tmp_path / "run"
    section = ReportSection("Landscape", "<p>ranked</p>", (("landscape.png", PNG),))
    report = write_page_report(
        out, {"title": "a <ranking>", "top": (1, 2)}, summary_html="<p>summary</p>",
        sections=[section], files={"table.csv": b"a,b\n1,2\n"}, config={"seed": 3}, seed=3,
    )  # fmt: skip
    assert report == {"title": "a <ranking>", "top": [1, 2]}
    assert json.loads((out / "report.json").read_text()) == report
    page = (out / "report.html").read_text()
    assert "<h1>a &lt;ranking&gt;</h1>" in page and "<p>summary</p>" in page
    assert "<h2>Landscape</h2><p>ranked</p>" in page and 'alt="landscape.png"' in page
    assert (out / "landscape.png").read_bytes() == PNG and (out / "table.csv").exists()
    assert json.loads((out / "provenance.json").read_text())["seed"] == 3


def test_page_report_refuses_clashing_names_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="clash"):
        write_page_report(out, {"title": "t"}, summary_html="", files={"report.json": b"{}"})
    with pytest.raises(ValueError, match="title"):
        write_page_report(out, {}, summary_html="")
    assert not out.exists()
