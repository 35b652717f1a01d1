"""Stories over time: dates from what an article prints, the same file twice, the original of a
syndicated story chosen the same way in any order, story links, and answers that lead with the
newest figure, show earlier ones dated and show outlets that disagree (rag.ingest.dates,
rag.ingest.stories, rag.answering.over_time)."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from rag import RAG, Config
from rag.answering.time_words import Period, news_date, time_asked
from rag.cli import main
from rag.ingest import dates, duplicates
from rag.ingest.chunking import segments
from rag.ingest.sources import load_documents
from rag.types import Answer
from tests.conftest import REPO, write
from tests.test_ingest import make_pdf

STORIES = REPO / "benchmarks" / "stories"
EXAMPLE = REPO / "examples" / "stories"


def one(path: Path) -> tuple[str | None, dict]:
    docs, skipped = load_documents(path, path.read_bytes())
    assert skipped == [] and len(docs) == 1, skipped
    return docs[0].date, docs[0].meta


# --- dates --------------------------------------------------------------------------------


def test_every_story_fixture_is_dated_from_what_it_prints() -> None:
    expected = json.loads((STORIES / "stories.json").read_text())
    printed = {f: d for s in expected["stories"].values() for f, d in s["files"].items()} | expected["alone"]
    for path in sorted((STORIES / "articles").iterdir()):
        got, meta = one(path)
        assert got == printed[path.name], (path.name, got, meta.get("date_source"))
        # Markdown and text print their date; the one HTML original says it in its metadata too.
        assert meta["date_source"] in (*dates.PRINTED, "page metadata"), path.name


def test_a_dateline_dates_a_markdown_article_that_prints_nothing_else(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.md", "# Tunnel\n\nBy A. Writer\n\nBALTIMORE, March 4, 2026 — Crews dug on. More text here."
    )
    got, meta = one(path)
    assert (got, meta["date_source"]) == ("2026-03-04", "dateline")
    # The dateline is structure, never quoted as an answer.
    assert [p.kind for p in segments(path.read_text().split("\n\n", 1)[1])][:3] == ["byline", "dateline", "sentence"]


def test_a_printed_published_line_wins_over_a_pdfs_creation_date(tmp_path: Path) -> None:
    lines = ["Library repairs bill soars", "Published Feb. 27, 2025", "The repairs will cost 4.2 million pounds."]
    printed = tmp_path / "printed.pdf"
    printed.write_bytes(make_pdf(lines, "20250301"))
    got, meta = one(printed)
    assert (got, meta["date_source"]) == ("2025-02-27", "published line")
    assert meta["date_notes"] == ["the PDF metadata says 2025-03-01"]
    # With nothing printed, the CreationDate is all there is, and rag show says so.
    bare = tmp_path / "bare.pdf"
    bare.write_bytes(make_pdf(["Library repairs bill soars", "The repairs will cost 4.2 million pounds."], "20250301"))
    got, meta = one(bare)
    assert (got, meta["date_source"]) == ("2025-03-01", "PDF metadata")
    assert dates.describe(got, meta).startswith("2025-03-01, from the PDF's CreationDate (no date is printed")


def test_an_update_dates_the_text_and_contradictions_and_future_dates_are_noted() -> None:
    def chosen(text: str, today: date = date(2026, 12, 1)) -> dates.Dated:
        parts = segments(text)
        return dates.choose(None, "", dates.printed_dates(text, parts), today)

    updated = chosen("Title here\nPublished March 4, 2026\nUpdated Sept. 18, 2026\n\nBody text. More.")
    assert (updated.date, updated.source, updated.published, updated.notes) == (
        "2026-09-18", "updated line", "2026-03-04", ()
    )  # fmt: skip
    contradicted = chosen("Title here\nPublished March 4, 2026\n\nBALTIMORE, March 9, 2026 — Body text. More.")
    assert (contradicted.date, contradicted.notes) == ("2026-03-04", ("the dateline says 2026-03-09",))
    future = chosen("Title here\nPublished March 4, 2027\n\nBody text. More.")
    assert future.notes == ("the date is later than the day it was indexed",)
    # Front matter someone wrote on purpose is kept over the printed line, and the line is noted.
    kept = dates.choose("2026-01-01", "front matter", dates.Printed(published="2026-03-04"))
    assert (kept.date, kept.source, kept.notes) == (
        "2026-01-01",
        "front matter",
        ("the published line says 2026-03-04",),
    )
    none = chosen("Title here\n\nBody text without a date. More.")
    assert (none.date, none.source) == (None, "")
    assert dates.describe(None, {}) == "no date (none printed, none in the file's metadata)"


def test_rag_show_says_where_the_date_came_from_and_no_date_rather_than_today(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "docs" / "undated.md", "# Undated note\n\nA note with no date at all. It says little.")
    shutil.copy(EXAMPLE / "tunnel-march.md", tmp_path / "docs" / "tunnel-march.md")
    index = str(tmp_path / "index")
    fast = ["--index-dir", index, "--model", "hashing-64", "--no-progress"]
    assert main(["index", str(tmp_path / "docs"), *fast]) == 0
    capsys.readouterr()
    assert main(["show", str(tmp_path / "docs" / "undated.md"), "--index-dir", index]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("no date (none printed, none in the file's metadata) ·")
    assert main(["show", str(tmp_path / "docs" / "tunnel-march.md"), "--index-dir", index, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["date"], shown["date_source"], shown["site"]) == ("2026-03-04", "dateline", "Harbor Herald")


# --- time words -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "want", "period"),
    [
        ("How many people work on the tunnel now?", "latest", None),
        ("How many workers were on the project in March?", "period", Period(None, 3)),
        ("How many cases were confirmed in March 2026?", "period", Period(2026, 3)),
        ("How many homes lost power on Jan. 14?", "period", Period(None, 1, 14)),
        ("What was the count as of June 5?", "period", Period(None, 6, 5, until=True)),
        ("What did it cost in 2025?", "period", Period(2025)),
        ("What was the budget last year?", "period", Period(2025)),
        ("When was the library first due to reopen?", "earliest", None),
        ("How many flights were cancelled at first?", "earliest", None),
        ("What fare was proposed before the update?", "before", None),
        ("When will the first redundancies take effect?", "latest", None),  # "first" names them, not a time
        ("How many workers are employed on the project?", "latest", None),
    ],
)
def test_time_words_in_a_question(question: str, want: str, period: Period | None) -> None:
    asked = time_asked(question, today=date(2026, 12, 7))
    assert (asked.want, asked.period) == (want, period)


def test_periods_hold_dates_and_dates_read_as_news_writes_them() -> None:
    assert Period(None, 3).holds("2026-03-04") and not Period(None, 3).holds("2026-09-18")
    assert Period(None, 6, 5, until=True).holds("2026-06-02") and not Period(None, 6, 5, until=True).holds("2026-06-08")
    assert not Period(2026).holds(None)
    assert [news_date(d) for d in ("2026-09-18", "2026-03-04", "2026-06-02", None)] == [
        "Sept. 18, 2026", "March 4, 2026", "June 2, 2026", "no date"
    ]  # fmt: skip


# --- syndicated copies ------------------------------------------------------------------------


def facts(
    doc_id: str, date_: str | None, site: str, credit: str | None = None, path: str = "", source: str = ""
) -> duplicates.Facts:
    return duplicates.Facts(
        doc_id, "Title", source or f"/{doc_id}.md", path or f"/{doc_id}.md", date_, site, credit, ""
    )


def test_the_original_is_the_earliest_then_the_credited_then_the_smallest_id_in_any_order() -> None:
    cases = [
        # The earliest copy, whatever credits say.
        ([facts("b", "2026-03-03", "Wire"), facts("a", "2026-03-04", "Star", "Wire")], "b"),
        # Same day: the outlet another copy's dateline credits.
        (
            [facts("z-wire", "2026-03-03", "Global Wire"), facts("a-star", "2026-03-03", "Star", "Global Wire")],
            "z-wire",
        ),
        # Same day: the page another copy names as canonical.
        (
            [
                facts("z", "2026-03-03", "X", path="https://x.example/s", source="https://x.example/s"),
                facts("a", "2026-03-03", "Y", path="https://y.example/s", source="https://x.example/s"),
            ],
            "z",
        ),
        # Same day, no credit between them: not the one crediting an outlet not here; then the id.
        ([facts("b", "2026-03-03", "B"), facts("a", "2026-03-03", "A", "AP")], "b"),
        ([facts("b", None, "B"), facts("c", None, "C")], "b"),
    ]
    for copies, expected in cases:
        for order in range(6):
            shuffled = copies[:]
            random.Random(order).shuffle(shuffled)
            assert duplicates.original(shuffled).id == expected


def test_a_similar_report_with_other_figures_or_a_week_later_is_not_a_copy() -> None:
    def doc(name: str) -> duplicates.Facts:
        path = STORIES / "articles" / name
        (d,), _ = load_documents(path, path.read_bytes())
        return duplicates.Facts(d.id, d.title, d.source, d.path, d.date, d.meta["site"], d.meta.get("credit"), d.text)

    herald, post = doc("tunnel-herald-september.md"), doc("tunnel-coastalpost-september.md")
    assert duplicates.same_version(herald, post)  # a day later, a paragraph cut, the same figures
    first, widened = doc("ashford-observer-aug3.md"), doc("ashford-observer-aug5.md")
    assert not duplicates.same_version(first, widened)  # 12,000 households, then 31,000
    later = duplicates.Facts(*[getattr(herald, f) for f in ("id", "title", "source", "path")], "2026-10-18",
                             herald.site, None, herald.text)  # fmt: skip
    assert not duplicates.same_version(herald, later)


def test_a_copy_that_credits_the_original_and_cuts_half_of_it_is_still_a_copy() -> None:
    def doc(name: str) -> tuple[duplicates.Facts, object]:
        path = STORIES / "articles" / name
        (d,), _ = load_documents(path, path.read_bytes())
        facts = duplicates.Facts(d.id, d.title, d.source, d.path, d.date, d.meta["site"], d.meta.get("credit"), d.text)
        return facts, duplicates.signature(d.text)

    (original, a), (copy, b) = doc("ravensmoor-gazette-june.md"), doc("ravensmoor-northwire-june.md")
    similar = duplicates.similarity(a, b)  # type: ignore[arg-type]
    assert duplicates.CREDITED_MIN <= similar < 0.5 and copy.credit == original.site == "Moorland Gazette"
    assert duplicates.alike(original, copy, similar, 0.5) and duplicates.same_version(original, copy)
    uncredited = duplicates.Facts(*[getattr(copy, f) for f in ("id", "title", "source", "path", "date", "site")],
                                  None, copy.text)  # fmt: skip
    assert not duplicates.alike(original, uncredited, similar, 0.5)


SYNDICATED = {  # files of five stories: each pair's first is the original
    ("tunnel-herald-september.md", "tunnel-coastalpost-september.md"),  # the earlier day
    ("measles-globalwire-march.html", "measles-leedsstar-march.md"),  # same day, credited, an HTML page
    ("storm-courier-jan15.txt", "storm-highlandwire-jan15.md"),  # same day, credited, a text file
    ("dunmore-dispatch-oct20.md", "dunmore-regionalwire-oct20.html"),  # the copy an HTML page
    ("ravensmoor-gazette-june.md", "ravensmoor-northwire-june.md"),  # a day later, half of it, credited
}


def test_the_original_shown_is_the_same_in_ten_indexings_in_shuffled_order(tmp_path: Path) -> None:
    files = sorted(
        {name for pair in SYNDICATED for name in pair} | {"tunnel-herald-march.md", "storm-coastnews-jan15.md"}
    )
    shown_runs = []
    for run in range(10):
        order = files[:]
        random.Random(run).shuffle(order)
        config = Config(index_dir=tmp_path / f"index-{run}", model="hashing-64")
        with RAG.open(config=config) as rag:
            for name in order:
                rag.index([STORIES / "articles" / name], progress=False)
            names = {doc_id: Path(path).name for doc_id, path in rag.store.document_paths()}
            shown = {}
            for original, copy in SYNDICATED:
                title = rag.document(str(STORIES / "articles" / copy)).title
                found = [p for p in rag.search(title, k=10) if names[p.doc_id] in (original, copy)]
                shown[original] = (names[found[0].doc_id], [c.site for c in found[0].also])
        shown_runs.append(shown)
    assert all(shown == shown_runs[0] for shown in shown_runs)
    assert {k: v[0] for k, v in shown_runs[0].items()} == {original: original for original, _ in SYNDICATED}
    # "Also published by" names the outlet, not the file.
    assert shown_runs[0]["measles-globalwire-march.html"][1] == ["Leeds Evening Star"]
    assert shown_runs[0]["dunmore-dispatch-oct20.md"][1] == ["Regional Wire"]


# --- the real model: links and answers -----------------------------------------------------


@pytest.fixture(scope="module")
def story_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RAG]:
    with RAG.open(tmp_path_factory.mktemp("stories") / "index") as rag:
        rag.index([STORIES / "articles"], progress=False)
        yield rag


@pytest.mark.slow
def test_every_story_is_linked_and_no_same_topic_distractor(story_set: RAG) -> None:
    expected = json.loads((STORIES / "stories.json").read_text())
    names = {doc_id: Path(path).name for doc_id, path in story_set.store.document_paths()}
    by_name = {name: doc_id for doc_id, name in names.items()}
    for story in expected["stories"].values():
        for name in story["files"]:
            members = {names[f.id] for v in story_set.versions(by_name[name]) for f in (v.report, *v.copies)}
            assert members == set(story["files"]), name
    for name in expected["alone"]:
        assert [v.report.id for v in story_set.versions(by_name[name])] == [by_name[name]]


def sentences(answer: Answer) -> list[tuple[str, str | None]]:
    return [(s.role, s.dated) for s in answer.sentences]


def assert_exact(rag: RAG, answer: Answer) -> None:
    for c in answer.citations:
        assert rag.document(c.doc_id).text[c.start : c.end] == c.quote


@pytest.mark.slow
def test_the_newest_figure_leads_and_earlier_ones_are_dated(story_set: RAG) -> None:
    answer = story_set.ask("How many workers are employed on the harbor tunnel project?")
    assert sentences(answer) == [("lead", "2026-09-18"), ("earlier", "2026-03-04")]
    assert "2,300" in answer.sentences[0].text and "1,800" in answer.sentences[1].text
    assert answer.text.splitlines()[1].startswith("Earlier, March 4, 2026: About 1,800 workers")
    assert answer.answer_span is not None and answer.answer_span.text == "2,300"
    assert_exact(story_set, answer)
    # "in March" leads with March's report, the later one after it.
    march = story_set.ask("How many workers were on the Harbor Street tunnel project in March?")
    assert sentences(march) == [("lead", "2026-03-04"), ("later", "2026-09-18")]
    assert "1,800" in march.sentences[0].text


@pytest.mark.slow
def test_outlets_that_disagree_on_one_day_are_both_shown(story_set: RAG) -> None:
    answer = story_set.ask("How many people were injured in the Dunmore plant fire?")
    assert [s.role for s in answer.sentences][:2] == ["lead", "differs"]
    assert answer.text.startswith("Sources differ on Oct. 20, 2026:\n")
    told = " ".join(s.text for s in answer.sentences[:2])
    assert "Eleven" in told and "Fourteen" in told and answer.answer_span is None
    assert_exact(story_set, answer)


@pytest.mark.slow
def test_since_and_until_choose_the_version_and_never_decline_it(story_set: RAG) -> None:
    from rag.search.query import Filters

    question = "How many workers are employed on the harbor tunnel project?"
    after = story_set.ask(question, filters=Filters.parse(since="2026-06"))
    assert after.answerable and "2,300" in after.text and "1,800" not in after.text
    before = story_set.ask(question, filters=Filters.parse(until="2026-06"))
    assert before.answerable and "1,800" in before.text and "2,300" not in before.text


@pytest.mark.slow
def test_without_the_reader_answers_are_as_before(story_set: RAG) -> None:
    plain = story_set.fork()
    plain.config = plain.config.replace(reader="none")
    try:
        answer = plain.ask("How many workers are employed on the harbor tunnel project?")
        assert answer.answerable and not answer.over_time
    finally:
        plain.close()


@pytest.mark.slow
def test_rag_timeline_oldest_first_with_changed_figures(story_set: RAG, capsys: pytest.CaptureFixture[str]) -> None:
    found = story_set.timeline("How many acres has the Pine Ridge fire burned?")
    # Both reports of July 27 (the county's and another outlet's); each marks what changed since July 23.
    assert [e.citation.date for e in found.entries] == ["2026-07-21", "2026-07-23", "2026-07-27", "2026-07-27"]
    assert [[e.citation.quote[a:b] for a, b in e.changed] for e in found.entries] == [
        [], ["11,000"], ["18,500", "60%"], ["18,500"]
    ]  # fmt: skip
    assert found.entries[1].also == ("California Wire",)
    nothing = story_set.timeline("zebra migration across the Serengeti")
    assert nothing.entries == ()
    index = str(story_set.dir)
    assert main(["timeline", "zebra migration across the Serengeti", "--index-dir", index]) == 0
    assert capsys.readouterr().out == (
        'No story in the index answers "zebra migration across the Serengeti"; try other words, or `rag search`.\n'
    )
    assert main(["timeline", "How many acres has the Pine Ridge fire burned?", "--index-dir", index]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Pine Ridge fire slows as crews gain ground: 4 reports, July 21, 2026 to July 27, 2026\n")
    assert "changed: 18,500, 60%" in out


@pytest.mark.slow
def test_a_story_with_a_hundred_versions(tmp_path: Path) -> None:
    folder = tmp_path / "versions"
    for day in range(100):
        when = date(2025, 1, 1).toordinal() + 3 * day
        printed = date.fromordinal(when)
        write(
            folder / f"count-{day:03}.md",
            f"# Harbor ferry count\n\nBy Staff, Harbor Herald\nPublished {printed:%B} {printed.day}, {printed.year}\n\n"
            f"The Harbor Line ferry carried {1000 + 7 * day:,} passengers on its Kestrel route this week, the "
            "operator said.\n\nThe ferry runs every twenty minutes between the two piers.",
        )
    with RAG.open(tmp_path / "index") as rag:
        rag.index([folder], progress=False)
        answer = rag.ask("How many passengers did the Harbor Line ferry carry?")
        newest = date.fromordinal(date(2025, 1, 1).toordinal() + 3 * 99).isoformat()
        assert answer.answerable and answer.sentences[0].dated == newest  # the newest of a hundred
        assert len(answer.sentences) <= 5 and "1,693" in answer.sentences[0].text
        found = rag.timeline("How many passengers did the Harbor Line ferry carry?")
        assert 2 <= len(found.entries) <= 100


@pytest.mark.slow
def test_the_web_chat_shows_an_answer_over_time_as_a_timeline_and_the_reader_the_story(story_set: RAG) -> None:
    from ui.render import answer_message, document_html

    answer = story_set.ask("How many workers are employed on the harbor tunnel project?")
    html = answer_message(answer)
    assert '<ol class="rag-timeline">' in html
    assert '<li class="rag-lead"><span class="rag-when">Sept. 18, 2026:</span> The project now employs about ' in html
    assert '<strong class="rag-phrase">2,300</strong>' in html
    assert '<li class="rag-earlier"><span class="rag-when">Earlier, March 4, 2026:</span> About 1,800' in html
    conflict = answer_message(story_set.ask("How much will the Harbor Street tunnel cost?"))
    assert '<li class="rag-heading">Sources differ on Sept. 18, 2026:</li>' in conflict
    assert '<li class="rag-differs"><span class="rag-when">Bay Times:</span>' in conflict
    page = document_html("T", "2026-09-18", "s", "text", None, ["updated Sept. 18, 2026: <b>x</b> (Harbor Herald)"])
    assert '<ul class="rag-story"><li>updated Sept. 18, 2026: &lt;b&gt;x&lt;/b&gt; (Harbor Herald)</li></ul>' in page


def test_a_store_from_before_stories_is_linked_once_at_the_next_index(tmp_path: Path) -> None:
    from rag.ingest.indexer import LINK_RULE, STORIES_LINKED

    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("tunnel-march.md", "tunnel-coastal-post.md", "tunnel-september.md"):
        shutil.copy(EXAMPLE / name, folder / name)
    shutil.copy(REPO / "examples" / "news" / "genome.md", folder / "genome.md")  # another story
    config = Config(index_dir=tmp_path / "index", model="hashing-64")
    with RAG.open(config=config) as rag:
        rag.index([folder], progress=False)
        linked = rag.store.db.execute("SELECT count(*) FROM story_links").fetchone()[0]
        assert linked > 0
        # As a store made before stories: no links, no mark.
        with rag.store.transaction() as db:
            db.execute("DELETE FROM story_links")
            db.execute("DELETE FROM meta WHERE key = ?", (STORIES_LINKED,))
        rag.index([folder], progress=False)  # nothing changed in the files
        assert rag.store.db.execute("SELECT count(*) FROM story_links").fetchone()[0] == linked
        assert rag.store.meta()[STORIES_LINKED] == LINK_RULE
        # A store linked by the earlier rule (undated documents linked by topic) is linked again.
        with rag.store.transaction() as db:
            db.execute("UPDATE meta SET value = '1' WHERE key = ?", (STORIES_LINKED,))
            ids = dict(db.execute("SELECT path, id FROM documents").fetchall())
            genome, march = (next(i for p, i in ids.items() if p.endswith(n)) for n in ("genome.md", "tunnel-march.md"))
            db.execute("INSERT INTO story_links VALUES (?, ?, 0.9)", (genome, march))
        rag.index([folder], progress=False)
        assert rag.store.db.execute("SELECT count(*) FROM story_links").fetchone()[0] == linked
        assert rag.store.meta()[STORIES_LINKED] == LINK_RULE


def test_undated_documents_on_one_topic_are_not_linked_as_a_story(tmp_path: Path) -> None:
    """Papers or posts with no date share topics and names without being one story's versions;
    linked, each was answered from the others' sentences (COVID-QA's papers lost 18 points of
    contains-gold). Dated, the same two reports are one story."""
    undated, dated = tmp_path / "undated", tmp_path / "dated"
    for folder in (undated, dated):
        folder.mkdir()
    for name in ("tunnel-march.md", "tunnel-september.md"):
        text = (EXAMPLE / name).read_text(encoding="utf-8")
        shutil.copy(EXAMPLE / name, dated / name)
        bare = text.replace("BALTIMORE, March 4, 2026 —", "BALTIMORE —").replace("Updated Sept. 18, 2026\n", "")
        (undated / name).write_text(bare, encoding="utf-8")
    for folder, want in ((dated, 2), (undated, 0)):
        config = Config(index_dir=tmp_path / f"index-{folder.name}", model="hashing-64")
        with RAG.open(config=config) as rag:
            rag.index([folder], progress=False)
            assert rag.store.db.execute("SELECT count(*) FROM documents WHERE date IS NULL").fetchone()[0] == (
                0 if folder is dated else 2
            )
            links = rag.store.db.execute("SELECT count(*) FROM story_links").fetchone()[0]
            assert (links > 0) == (want > 0), (folder.name, links)
