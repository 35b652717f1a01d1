"""`rag index URL`: pages, feeds and sitemaps from a real HTTP server on 127.0.0.1, and every
way a site can fail. Nothing leaves the machine."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag.api import RAG
from rag.cli.console import print_answer
from rag.config import Config, ConfigError, WebSettings
from rag.ingest import web
from rag.ingest.address_guard import FetchError
from rag.ingest.web import Fetcher
from rag.types import IndexSummary
from tests.conftest import assert_consistent
from tests.local_site import LocalSite, Route, atom, rss, sitemap, sitemap_index
from ui.render import sources_html

PAGES = Path(__file__).parent / "fixtures" / "pages"
REPO_NEWS = Path(__file__).parents[1] / "examples" / "news"
TRUTH = json.loads((PAGES / "truth.json").read_text(encoding="utf-8"))


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with LocalSite() as running:
        yield running


@pytest.fixture
def web_config(tmp_path: Path) -> Config:
    # The test server is on 127.0.0.1, which is refused unless allowed; no delay between requests.
    return Config(
        index_dir=tmp_path / "index", model="hashing-64", encode_group=8, allow_private_urls=True, crawl_delay=0
    )


def index(config: Config, *urls: str) -> IndexSummary:
    with RAG.open(config=config) as rag:
        return rag.index(list(urls), progress=False)


def reasons(summary: IndexSummary) -> dict[str, str]:
    return {s.path: s.reason for s in summary.skipped}


# --- pages -----------------------------------------------------------------------------------


def test_a_page_becomes_a_document_with_title_date_author_site_and_canonical_source(
    site: LocalSite, web_config: Config
) -> None:
    site.routes["/news/fed"] = Route(page("fed-rates-newsroom.html"))
    summary = index(web_config, site.url("/news/fed"))
    assert (summary.added, summary.skipped) == (1, ())
    with RAG.open(config=web_config) as rag:
        (doc_id,) = rag.resolve(site.url("/news/fed"))
        doc = rag.document(doc_id)
    assert doc.title == "Fed holds rates steady as inflation cools"
    assert doc.date == "2026-09-16"  # published, not the "Updated Sept. 17" of the page
    assert doc.source == "https://globalwire.example/story/fed-rates"  # the page's canonical URL
    assert doc.path == site.url("/news/fed")
    assert doc.meta["author"] == "Mark Olsen" and doc.meta["site"] == "Global Wire"
    assert "We use cookies" not in doc.text and "Get the morning briefing" not in doc.text
    assert doc.text.startswith("WASHINGTON (AP) — The U.S. Federal Reserve kept its benchmark rate at 3.75%")
    assert site.requests[0].headers["user-agent"].startswith("rag-articles/")
    assert_consistent(web_config.index_dir)


def test_reindexing_sends_a_conditional_request_and_embeds_nothing_when_unchanged(
    site: LocalSite, web_config: Config
) -> None:
    site.routes["/a"] = Route(page("dengue-wordpress.html"), etag='"v1"')
    site.routes["/b"] = Route(page("genome-blog.html"), last_modified="Wed, 16 Sep 2026 08:00:00 GMT")
    first = index(web_config, site.url("/a"), site.url("/b"))
    assert first.added == 2 and first.embedded > 0
    again = index(web_config, site.url("/a"), site.url("/b"))
    assert (again.added, again.updated, again.unchanged, again.embedded) == (0, 0, 2, 0)
    assert site.hits("/a")[-1].headers["if-none-match"] == '"v1"'
    assert site.hits("/b")[-1].headers["if-modified-since"] == "Wed, 16 Sep 2026 08:00:00 GMT"
    # A changed page (new ETag) is read and replaced.
    site.routes["/a"] = Route(page("dengue-wordpress.html").replace(b"412 locally", b"530 locally"), etag='"v2"')
    changed = index(web_config, site.url("/a"))
    assert (changed.updated, changed.unchanged) == (1, 0)
    with RAG.open(config=web_config) as rag:
        assert "530 locally acquired" in rag.document(rag.resolve(site.url("/a"))[0]).text
    assert_consistent(web_config.index_dir)


def test_an_edited_headline_keeps_the_id_and_a_page_is_removed_by_its_url(site: LocalSite, web_config: Config) -> None:
    site.routes["/p"] = Route(page("dengue-newsroom.html"))
    index(web_config, site.url("/p"))
    with RAG.open(config=web_config) as rag:
        (before,) = rag.resolve(site.url("/p"))
    site.routes["/p"] = Route(page("dengue-newsroom.html").replace(b"Dengue cases rise", b"Dengue cases climb"))
    assert index(web_config, site.url("/p")).updated == 1
    with RAG.open(config=web_config) as rag:
        assert rag.resolve(site.url("/p")) == [before]
        assert rag.document(before).title == "Dengue cases climb in southern Europe"
        assert rag.resolve("https://globalwire.example/story/dengue") == [before]  # the canonical URL too
        assert rag.remove(site.url("/p")) == [before]
    assert_consistent(web_config.index_dir)


def test_a_server_without_validators_is_still_not_reembedded(site: LocalSite, web_config: Config) -> None:
    site.routes["/p"] = Route(page("orbit-launch-amp.html"))
    index(web_config, site.url("/p"))
    again = index(web_config, site.url("/p"))
    assert (again.unchanged, again.embedded) == (1, 0)  # same bytes: same hash, nothing parsed


# --- feeds and sitemaps ------------------------------------------------------------------------


def test_an_rss_feed_indexes_its_items_and_reports_a_dead_link(site: LocalSite, web_config: Config) -> None:
    site.routes["/s/genome"] = Route(page("genome-legacy.html").replace(b"Posted:", b"Filed"))  # no date in the page
    site.routes["/s/bridge"] = Route(page("riverside-bridge-magazine.html"))
    site.routes["/feed.xml"] = Route(
        rss(
            [
                ("Genome item", site.url("/s/genome"), "Mon, 04 May 2026 09:00:00 GMT"),
                ("Bridge item", site.url("/s/bridge"), "Wed, 30 Sep 2026 09:00:00 GMT"),
                ("Gone item", site.url("/s/missing"), "Wed, 30 Sep 2026 10:00:00 GMT"),
            ]
        ),
        content_type="application/rss+xml",
    )
    summary = index(web_config, site.url("/feed.xml"))
    assert summary.added == 2
    assert reasons(summary) == {site.url("/s/missing"): "HTTP 404 Not Found"}
    with RAG.open(config=web_config) as rag:
        genome = rag.document(rag.resolve(site.url("/s/genome"))[0])
        bridge = rag.document(rag.resolve(site.url("/s/bridge"))[0])
    assert genome.date == "2026-05-04"  # from the feed entry: the page has none
    assert genome.meta["feed"] == site.url("/feed.xml")
    assert bridge.title == "City approves new Riverside bridge" or bridge.title.startswith(TRUTH[
        "riverside-bridge-magazine.html"]["title"][:10])  # fmt: skip
    assert_consistent(web_config.index_dir)


def test_an_atom_feed_and_a_sitemap_index(site: LocalSite, web_config: Config) -> None:
    site.routes["/a1"] = Route(page("dengue-amp.html"))
    site.routes["/a2"] = Route(page("fed-rates-blog.html"))
    site.routes["/atom"] = Route(
        atom([("A1", site.url("/a1"), "2026-08-12T00:00:00Z"), ("A2", site.url("/a2"), "2026-09-16T00:00:00Z")]),
        content_type="application/atom+xml",
    )
    site.routes["/p1"] = Route(page("genome-wordpress.html"))
    site.routes["/p2"] = Route(page("orbit-launch-newsroom.html"))
    site.routes["/sitemap-news.xml"] = Route(sitemap([site.url("/p1"), site.url("/p2")]), content_type="text/xml")
    site.routes["/p3"] = Route(page("panjshir-amp.html"))
    packed = gzip.compress(sitemap([site.url("/p3")]))
    site.routes["/sitemap-old.xml.gz"] = Route(packed, content_type="application/x-gzip")
    bomb = gzip.compress(b"<urlset>" + b" " * 3_000_000)  # 3 MB unpacked from a few kB
    site.routes["/bomb.xml.gz"] = Route(bomb, content_type="application/x-gzip")
    site.routes["/sitemap.xml"] = Route(
        sitemap_index([site.url("/sitemap-news.xml"), site.url("/sitemap-old.xml.gz"), site.url("/bomb.xml.gz")]),
        content_type="text/xml",
    )
    summary = index(web_config.replace(max_file_mb=1), site.url("/atom"), site.url("/sitemap.xml"))
    assert summary.added == 5
    assert reasons(summary) == {site.url("/bomb.xml.gz"): "unpacks to more than 1 MB (max_file_mb)"}


# --- what goes wrong ------------------------------------------------------------------------------


def endless() -> Iterator[bytes]:
    block = b"<p>" + b"x" * 65_536 + b"</p>"
    for _ in range(1600):  # 100 MB if nothing stops it
        yield block


def test_each_bad_url_gets_its_own_reason_and_the_rest_is_indexed(site: LocalSite, web_config: Config) -> None:
    config = web_config.replace(fetch_timeout=1.0, max_file_mb=1)
    site.routes["/good"] = Route(page("dengue-newsroom.html"))
    site.routes["/500"] = Route(b"oops", status=500, content_type="text/plain")
    site.routes["/slow"] = Route(page("genome-amp.html"), delay=3)
    site.routes["/image"] = Route(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, content_type="image/png")
    site.routes["/huge"] = Route(endless, declare_length=False)
    site.routes["/huge-declared"] = Route(b"x" * 2_000_000)
    site.routes["/broken-feed"] = Route(
        b"<?xml version='1.0'?><rss><channel><item><title>x", content_type="application/rss+xml"
    )
    site.routes["/loop-a"] = Route(status=302, headers={"Location": "/loop-b"})
    site.routes["/loop-b"] = Route(status=302, headers={"Location": "/loop-a"})
    site.routes["/to-ftp"] = Route(status=301, headers={"Location": "ftp://127.0.0.1/file"})
    urls = ["/good", "/500", "/missing", "/slow", "/image", "/huge", "/huge-declared", "/broken-feed", "/loop-a",
            "/to-ftp"]  # fmt: skip
    summary = index(config, *(site.url(u) for u in urls))
    got = reasons(summary)
    assert summary.added == 1
    assert got[site.url("/500")] == "HTTP 500 Internal Server Error"
    assert got[site.url("/missing")] == "HTTP 404 Not Found"
    assert got[site.url("/slow")].startswith("timed out: not fetched within 1 s (fetch_timeout bounds the whole")
    assert got[site.url("/image")] == "not a web page, feed or sitemap (content type image/png)"
    assert got[site.url("/huge")] == "more than 1 MB; stopped reading (max_file_mb)"
    assert got[site.url("/huge-declared")] == "2.0 MB is over the 1 MB limit (max_file_mb)"
    assert got[site.url("/broken-feed")].startswith("not a readable feed (broken XML")
    assert got[site.url("/loop-a")].startswith("redirect loop (")
    assert got[site.url("/to-ftp")] == "only http and https URLs are fetched, not ftp:"
    assert_consistent(config.index_dir)


def test_a_page_that_now_fails_keeps_its_previous_version_and_a_gone_one_is_removed(
    site: LocalSite, web_config: Config
) -> None:
    site.routes["/kept"] = Route(page("genome-newsroom.html"))
    site.routes["/gone"] = Route(page("dengue-blog.html"))
    assert index(web_config, site.url("/kept"), site.url("/gone")).added == 2
    site.routes["/kept"] = Route(b"down for maintenance", status=503, content_type="text/plain")
    site.routes["/gone"] = Route(b"gone", status=410, content_type="text/plain")
    summary = index(web_config, site.url("/kept"), site.url("/gone"))
    assert reasons(summary) == {site.url("/kept"): "HTTP 503 Service Unavailable", site.url("/gone"): "HTTP 410 Gone"}
    assert (summary.removed, summary.documents) == (1, 1)
    with RAG.open(config=web_config) as rag:
        assert "30,847 nucleotides" in rag.document(rag.resolve(site.url("/kept"))[0]).text
    assert_consistent(web_config.index_dir)


def test_private_addresses_are_refused_unless_allowed(site: LocalSite, web_config: Config) -> None:
    site.routes["/p"] = Route(page("genome-newsroom.html"))
    summary = index(web_config.replace(allow_private_urls=False), site.url("/p"))
    assert reasons(summary) == {
        site.url("/p"): "127.0.0.1 is a private or local address (127.0.0.1); "
        "set allow_private_urls = true to index pages on your own network"
    }
    assert site.requests == []  # refused before connecting


def test_robots_txt_is_obeyed_unless_turned_off(site: LocalSite, web_config: Config) -> None:
    site.routes["/robots.txt"] = Route(b"User-agent: rag-articles\nDisallow: /private/\n", content_type="text/plain")
    site.routes["/private/p"] = Route(page("genome-newsroom.html"))
    site.routes["/public/p"] = Route(page("dengue-newsroom.html"))
    summary = index(web_config, site.url("/private/p"), site.url("/public/p"))
    assert summary.added == 1
    assert reasons(summary)[site.url("/private/p")].startswith("robots.txt of the site disallows it")
    assert site.hits("/private/p") == [] and len(site.hits("/robots.txt")) == 1
    assert index(web_config.replace(respect_robots=False), site.url("/private/p")).added == 1


class VirtualClock:
    """The fetcher's clock, moved only by its own sleeps and by the test (it starts at the real
    monotonic time, so the fetch deadline, which reads the real one, is unaffected)."""

    def __init__(self) -> None:
        self.now = time.monotonic()
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(("between", "waits"), [(0.0, 0.3), (0.1, 0.2), (0.5, None)])
def test_requests_to_one_host_are_spaced_by_the_crawl_delay(
    site: LocalSite, monkeypatch: pytest.MonkeyPatch, between: float, waits: float | None
) -> None:
    """Judged on the fetcher's own clock, not by when the server's handler ran (on a loaded
    machine a handler can run late, and two hits then look closer than they were sent)."""
    clock = VirtualClock()
    monkeypatch.setattr(web, "time", SimpleNamespace(monotonic=clock.monotonic, sleep=clock.sleep))
    site.routes["/x"] = Route(b"<html><body><p>x</p></body></html>")
    with Fetcher(WebSettings(user_agent="rag-articles/test", crawl_delay=0.3, allow_private=True)) as fetcher:
        for _ in range(3):
            fetcher.get(site.url("/x"))
            clock.now += between  # the caller's own work between two fetches
    assert len(site.hits("/x")) == 3 and len(site.hits("/robots.txt")) == 1
    # robots.txt is asked first and counts as a request: the first page waits the whole delay.
    assert clock.slept == [pytest.approx(0.3)] + ([] if waits is None else [pytest.approx(waits)] * 2)


def test_fetcher_refuses_other_schemes_and_hosts_without_names() -> None:
    with Fetcher(WebSettings(user_agent="t")) as fetcher:
        with pytest.raises(FetchError, match="only http and https"):
            fetcher.get("file:///etc/passwd")
        with pytest.raises(FetchError, match="private or local address"):
            fetcher.get("http://localhost/")
        with pytest.raises(FetchError, match="private or local address"):
            fetcher.get("http://10.1.2.3/")


def test_web_settings_come_from_the_environment_and_the_config_file(tmp_path: Path) -> None:
    env = {"RAG_ALLOW_PRIVATE_URLS": "yes", "RAG_CRAWL_DELAY": "0.5", "RAG_RESPECT_ROBOTS": "off"}
    loaded = Config.load(env=env)
    assert (loaded.allow_private_urls, loaded.crawl_delay, loaded.respect_robots) == (True, 0.5, False)
    toml = tmp_path / "rag.toml"
    toml.write_text('fetch_timeout = 5\nuser_agent = "my-bot/1"\nduplicate_threshold = 0.9\n')
    loaded = Config.load(file=toml, env={})
    assert (loaded.fetch_timeout, loaded.user_agent, loaded.duplicate_threshold) == (5, "my-bot/1", 0.9)
    with pytest.raises(ConfigError, match="allow_private_urls='maybe' must be true or false"):
        Config.load(env={"RAG_ALLOW_PRIVATE_URLS": "maybe"})
    with pytest.raises(ConfigError, match=r"duplicate_threshold=2\.0 must be between 0"):
        Config(duplicate_threshold=2.0)


# --- the command line, with the real model ---------------------------------------------------------


@pytest.mark.slow  # starts `rag` processes
def test_rag_index_url_on_the_command_line(site: LocalSite, tmp_path: Path) -> None:
    site.routes["/fed"] = Route(page("fed-rates-wordpress.html"), etag='"1"')
    site.routes["/feed"] = Route(rss([("Dengue", site.url("/dengue"), "Wed, 12 Aug 2026 09:00:00 GMT")]))
    site.routes["/dengue"] = Route(page("dengue-newsroom.html"))
    env = {**os.environ, "RAG_ALLOW_PRIVATE_URLS": "true", "RAG_CRAWL_DELAY": "0"}
    index_dir = str(tmp_path / "idx")

    def rag(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rag.cli", *args, "--index-dir", index_dir],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )

    done = rag("index", site.url("/fed"), site.url("/feed"), site.url("/nothing-here"))
    assert done.returncode == 1, done.stderr  # a URL named on the command line failed: a partial run
    assert "2 added" in done.stdout and f"{site.url('/nothing-here')}: HTTP 404 Not Found" in done.stdout
    listed = rag("list")
    assert "Fed holds rates steady as inflation cools" in listed.stdout and "2026-09-16" in listed.stdout
    answer = rag("ask", "How many locally acquired dengue cases were reported in Europe?")
    assert "412" in answer.stdout and "https://globalwire.example/story/dengue" in answer.stdout, answer.stdout
    again = rag("index", site.url("/fed"), "--json")
    assert json.loads(again.stdout)["unchanged"] == 1 and json.loads(again.stdout)["embedded"] == 0


# --- syndicated copies ------------------------------------------------------------------------------


def syndicated(html: bytes) -> bytes:
    """The wire story as another outlet runs it: its own dateline credit, two sentences reworded."""
    return (
        html.replace("LISBON, Portugal —".encode(), "LISBON (Reuters) —".encode())
        .replace(b"the most since records began", b"the highest number since records started")
        .replace(b"Belgium within five years", b"Belgium within five years, perhaps sooner")
    )


def test_syndicated_copies_fill_one_result_and_list_the_other_outlets(site: LocalSite, web_config: Config) -> None:
    site.routes["/wire"] = Route(page("dengue-newsroom.html"))  # Global Wire
    site.routes["/local"] = Route(syndicated(page("dengue-wordpress.html")))  # Riverside Local News
    site.routes["/other"] = Route(page("fed-rates-newsroom.html"))
    summary = index(web_config, site.url("/wire"), site.url("/local"), site.url("/other"))
    assert (summary.added, summary.copies) == (3, 1)  # found when the second copy was indexed
    with RAG.open(config=web_config) as rag:
        wire, local = rag.resolve(site.url("/wire"))[0], rag.resolve(site.url("/local"))[0]
        assert "highest number since records started" in rag.document(local).text
        passages = rag.search("dengue cases in Europe tiger mosquito", k=5)
        shown = {p.doc_id for p in passages}
        assert len(shown & {wire, local}) == 1, "both copies of one story took result slots"
        best = next(p for p in passages if p.doc_id in {wire, local})
        (copy,) = best.also
        assert copy.doc_id == ({wire, local} - {best.doc_id}).pop()
        assert copy.site in ("Global Wire", "riverside.example") and copy.similarity >= 0.7
        assert best.to_json()["also_published_by"][0]["doc_id"] == copy.doc_id
        # The answer cites one copy and names the other outlet, in the terminal and in the web chat.
        answer = rag.ask("How many locally acquired dengue cases were reported in Europe?")
        out = io.StringIO()
        print_answer(answer, out)
        assert f"also published by: {copy.site} ({copy.source})" in out.getvalue(), out.getvalue()
        shown = sources_html(answer, lambda doc_id: rag.document(doc_id).text)
        assert f'Also published by <a href="{copy.source}"' in shown
    # Turned off, both copies come back.
    with RAG.open(config=web_config.replace(duplicate_threshold=0)) as rag:
        assert {wire, local} <= {p.doc_id for p in rag.search("dengue cases in Europe tiger mosquito", k=5)}


def test_copies_are_found_for_documents_indexed_before_signatures_existed(tmp_path: Path, web_config: Config) -> None:
    import sqlite3

    text = (REPO_NEWS / "dengue.md").read_text(encoding="utf-8")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.md").write_text(text, encoding="utf-8")
    index(web_config, str(tmp_path / "src"))
    db = sqlite3.connect(web_config.index_dir / "store.sqlite")
    with db:
        db.execute("DELETE FROM signatures")  # as a store made by an older rag
    db.close()
    (tmp_path / "src" / "b.md").write_text(text.replace("By Sofia Marques", "By Staff"), encoding="utf-8")
    summary = index(web_config, str(tmp_path / "src"))
    assert (summary.added, summary.copies) == (1, 1)


def test_a_published_line_wins_over_an_updated_line_above_it() -> None:
    from rag.ingest.readers import read_html

    story = b"<p>" + b"The council met on Tuesday and voted on the budget. " * 8 + b"</p>"
    page = b"<html><body><article><p>Updated Sept. 17, 2026</p><p>Published Sept. 16, 2026</p>" + story
    assert read_html(page + b"</article></body></html>").date == "2026-09-16"
