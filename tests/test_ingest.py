from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.ingest.readers import normalise_date
from rag.ingest.sources import load_documents, scan
from tests.conftest import SAMPLE_ARTICLES, write


def make_pdf(text: str | list[str], creation_date: str | None = None) -> bytes:
    """A minimal one-page PDF drawing ``text`` (a list: one line each) in Helvetica, with a
    correct xref table, and a CreationDate (YYYYMMDD) in its Info when given."""
    lines = [text] if isinstance(text, str) else text
    stream = ("BT /F1 12 Tf 72 720 Td " + " ".join(f"({line}) Tj 0 -18 Td" for line in lines) + " ET").encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if creation_date:
        objects.append(b"<< /CreationDate (D:%s000000) >>" % creation_date.encode())
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    info = b" /Info 6 0 R" if creation_date else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


def one(path: Path) -> tuple[str, str, str | None]:
    docs, skipped = load_documents(path, path.read_bytes())
    assert skipped == [] and len(docs) == 1
    return docs[0].title, docs[0].text, docs[0].date


def test_the_sample_articles_leading_date_becomes_metadata_not_text() -> None:
    path = next(SAMPLE_ARTICLES.glob("*.txt"))
    title, text, date = one(path)
    assert date == "2021-09-21"
    assert text.startswith("Five weeks after the Taliban")
    assert "date 2021" not in text
    assert title == path.stem.replace("_", " ")  # no title in the content: from the file name


def test_text_with_a_title_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "Date: 2020-01-02\nA Headline Here\n\nBody sentence one. Body two.")
    assert one(path) == ("A Headline Here", "A Headline Here\n\nBody sentence one. Body two.", "2020-01-02")


def test_markdown_front_matter_and_heading(tmp_path: Path) -> None:
    fm = write(tmp_path / "fm.md", '---\ntitle: "Front Title"\ndate: 3 March 2022\n---\n# Heading\n\nBody text.')
    assert one(fm) == ("Front Title", "# Heading\n\nBody text.", "2022-03-03")
    heading = write(tmp_path / "h.md", "Intro line.\n\n## The Heading ##\n\nMore.")
    assert one(heading)[0] == "The Heading"


def test_html_keeps_the_article_and_drops_scripts_navigation_and_tags(tmp_path: Path) -> None:
    page = """<html><head><title>Site | Big News</title>
    <meta property="og:title" content="Big News Today">
    <meta property="article:published_time" content="2023-05-06T10:00:00Z">
    <script>var x = "do not index";</script><style>p { color: red }</style></head>
    <body><nav><a href="/">Home</a> <a href="/world">World</a></nav>
    <header>Subscribe now!</header>
    <article><h1>Big News</h1><p>The first &amp; most important paragraph of the story.</p>
    <p>A second   paragraph,
    with a line break.</p><aside>Related: other stories</aside></article>
    <footer>Copyright</footer></body></html>"""
    title, text, date = one(write(tmp_path / "p.html", page))
    assert title == "Big News Today"
    assert date == "2023-05-06"
    assert text == (
        "Big News\n\nThe first & most important paragraph of the story.\n\nA second paragraph, with a line break."
    )


def test_html_without_article_uses_body_and_title_tag(tmp_path: Path) -> None:
    title, text, _ = one(write(tmp_path / "p.htm", "<title>T</title><body><p>Only text.</p></body>"))
    assert (title, text) == ("T", "Only text.")


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf("Quarterly revenue rose by 12 percent."))
    title, text, _ = one(path)
    assert "Quarterly revenue rose by 12 percent." in text
    assert title == "report"


def test_jsonl_reads_each_line_and_reports_bad_ones(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "n1", "text": "First article.", "title": "One", "date": "2021-01-01", "url": "http://x/1"}),
        "{not json",
        json.dumps({"title": "no text"}),
        json.dumps({"text": "   "}),
        "",
        json.dumps({"text": "Second article without id.", "section": "world"}),
    ]
    path = write(tmp_path / "feed.jsonl", "\n".join(lines))
    docs, skipped = load_documents(path, path.read_bytes())
    assert [(d.id, d.title, d.date, d.source) for d in docs[:1]] == [("n1", "One", "2021-01-01", "http://x/1")]
    assert docs[1].meta == {"section": "world"} and docs[1].source == f"{path}:6"
    reasons = sorted(s.reason for s in skipped)
    assert any(r.startswith("line 2: invalid JSON") for r in reasons)
    assert any(r == 'line 3: expected an object with a string "text"' for r in reasons)
    assert any("empty" in r for r in reasons)


def test_ids_are_stable_and_distinct(tmp_path: Path) -> None:
    a = write(tmp_path / "x" / "same.txt", "One.")
    b = write(tmp_path / "y" / "same.txt", "One.")
    id_a = load_documents(a, a.read_bytes())[0][0].id
    assert id_a == load_documents(a, a.read_bytes())[0][0].id
    assert id_a != load_documents(b, b.read_bytes())[0][0].id
    assert id_a.startswith("same-")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty document"),
        ("blank.md", b"  \n\n \t", "empty document"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary file"),
        ("bad.pdf", b"%PDF-1.4 this is not really a pdf", "not a readable PDF"),
        ("scan.pdf", make_pdf(""), "no extractable text"),
    ],
)
def test_bad_files_are_skipped_with_a_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    docs, skipped = load_documents(path, content)
    assert docs == []
    assert len(skipped) == 1 and skipped[0].path == str(path) and reason in skipped[0].reason


def test_scan_walks_folders_skips_hidden_and_names_unsupported_and_missing(tmp_path: Path) -> None:
    write(tmp_path / "a" / "one.txt", "x")
    write(tmp_path / "a" / "deep" / "two.md", "x")
    write(tmp_path / "a" / ".hidden.txt", "x")
    write(tmp_path / "a" / ".git" / "three.txt", "x")
    write(tmp_path / "a" / "data.csv", "x")
    found = scan([tmp_path / "a", tmp_path / "nope"])
    assert sorted(p.name for p in found.files) == ["one.txt", "two.md"]
    reasons = {Path(s.path).name: s.reason for s in found.skipped}
    assert reasons["data.csv"].startswith("unsupported file type .csv")
    assert reasons["nope"] == "no such file or folder"
    assert found.missing == (str(tmp_path / "nope"),)


def test_windows_1252_text_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("Caf\xe9 cr\xe8me.".encode("cp1252"))
    assert one(path)[1] == "Café crème."


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("2021-09-21", "2021-09-21"),
        ("2021-09-21T08:00:00+02:00", "2021-09-21"),
        ("September 21, 2021", "2021-09-21"),
        ("21 Sep 2021", "2021-09-21"),
        ("Tue, 21 Sep 2021 10:00:00 GMT", "2021-09-21"),
        ("yesterday", None),
        ("", None),
    ],
)
def test_dates_are_normalised(raw: str, iso: str | None) -> None:
    assert normalise_date(raw) == iso


def test_a_news_articles_byline_and_date_line_become_structure_and_its_date(tmp_path: Path) -> None:
    path = write(tmp_path / "fed.md", (Path(__file__).parents[1] / "examples" / "news" / "fed-rates.md").read_text())
    (doc,), _ = load_documents(path, path.read_bytes())
    assert doc.title == "Fed holds rates steady as inflation cools" and doc.date == "2026-09-17"
    kinds = [(doc.text[a:b], kind) for a, b, kind in doc.meta["structure"]]
    assert kinds == [
        ("# Fed holds rates steady as inflation cools", "heading"),
        ("By Mark Olsen", "byline"),
        ("Updated Sept. 17, 2026", "date"),
        ("WASHINGTON (AP) —", "dateline"),
    ]
