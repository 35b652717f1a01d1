"""Fetch web pages, feeds and sitemaps politely, and say plainly why one could not be fetched.

Politeness and safety, all settings (``rag.config.Config``):

- a user agent that names the project (``user_agent``), a timeout per request (``fetch_timeout``)
  and a size limit read as the body streams in (``max_file_mb``), so a 100 MB page stops at the limit;
- redirects are followed by hand, at most ``MAX_REDIRECTS``, each hop checked like the first
  (http/https only, robots.txt, private addresses), and a loop is named as one;
- robots.txt is read once per host and obeyed (``respect_robots``), and requests to one host are
  spaced by ``crawl_delay`` seconds (or the host's own Crawl-delay, when longer);
- only globally reachable addresses are fetched unless ``allow_private_urls`` is on, so a feed
  cannot make rag read the machine, the intranet or a cloud metadata service: loopback, private,
  link-local, carrier-grade NAT (100.64.0.0/10), documentation and every other range the IANA
  registries mark not global, and the IPv4 address inside IPv4-mapped, 6to4 and Teredo IPv6
  addresses. A name is resolved once per connection and the connection goes to the address
  that was checked, so a name that answers differently the second time (DNS rebinding) gains
  nothing;
- the whole fetch of one URL, connection, headers and body, ends at ``fetch_timeout`` seconds
  (``fetch_timeout`` bounds the total, not each read: a page sent a byte at a time is cut off).

Every failure is a ``FetchError`` whose text is one line about that URL; callers report it
and go on with the next URL.
"""

from __future__ import annotations

import gzip
import io
import threading
import time
import urllib.robotparser
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit, urlunsplit

if TYPE_CHECKING:  # httpx is imported when something is fetched: `rag ask` never pays for it
    import httpx

from rag.config import WebSettings
from rag.ingest.address_guard import (
    Deadline,
    FetchError,
    first_not_public,
    guarded_transport,
    refused,
    resolve,
)

MAX_REDIRECTS = 5
ROBOTS_MAX_BYTES = 500_000


@dataclass(frozen=True)
class Response:
    """One answered request: ``body`` is ``None`` when the server said 304 Not Modified."""

    url: str  # after redirects
    status: int
    content_type: str
    body: bytes | None
    etag: str | None = None
    last_modified: str | None = None
    location: str | None = None  # where a redirect points


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def normalise_url(url: str) -> str:
    """The URL with its scheme and host in lower case and without a #fragment, which names a
    place in the page, not another page."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))


class Fetcher:
    """One per indexing run: keeps the connection pool, the robots.txt files and the per-host clocks."""

    def __init__(self, settings: WebSettings, transport: httpx.BaseTransport | None = None) -> None:
        import httpx

        self.settings = settings
        self._deadline = Deadline()
        self.client = httpx.Client(
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(settings.timeout),
            follow_redirects=False,
            transport=transport or guarded_transport(settings.allow_private, self._deadline),
        )
        self._robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self._last_request: dict[str, float] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, etag: str | None = None, last_modified: str | None = None) -> Response:
        """GET ``url`` following redirects; with ``etag``/``last_modified`` the request is
        conditional and an unchanged page comes back as a 304 with no body."""
        seen: list[str] = []
        current = url
        while True:
            self._check_allowed(current)
            seen.append(current)
            headers = {}
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
            response = self._request(current, headers)
            if response.status in (301, 302, 303, 307, 308):
                location = response.location
                if not location:
                    raise FetchError(f"HTTP {response.status} redirect without a Location header")
                target = urljoin(current, location)
                if target in seen:
                    raise FetchError(f"redirect loop ({' -> '.join([*seen, target])})")
                if len(seen) > MAX_REDIRECTS:
                    raise FetchError(f"more than {MAX_REDIRECTS} redirects (last to {target})")
                current = target
                continue
            return response

    def _request(self, url: str, headers: dict[str, str]) -> Response:
        import httpx

        self._wait_turn(url)
        limit = self.settings.max_bytes
        self._deadline.at = time.monotonic() + self.settings.timeout
        try:
            with self.client.stream("GET", url, headers=headers) as reply:
                if reply.status_code in (301, 302, 303, 307, 308):
                    return Response(url, reply.status_code, "", None, location=reply.headers.get("location"))
                if reply.status_code == 304:
                    return Response(url, 304, "", None, reply.headers.get("etag"), reply.headers.get("last-modified"))
                if reply.status_code >= 400:
                    raise FetchError(f"HTTP {reply.status_code} {reply.reason_phrase}".rstrip(), reply.status_code)
                declared = reply.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise FetchError(f"{int(declared) / 1e6:.1f} MB is over the {limit / 1e6:g} MB limit (max_file_mb)")
                chunks: list[bytes] = []
                size = 0
                for chunk in reply.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise FetchError(f"more than {limit / 1e6:g} MB; stopped reading (max_file_mb)")
                    chunks.append(chunk)
                return Response(
                    str(reply.url),
                    reply.status_code,
                    reply.headers.get("content-type", ""),
                    b"".join(chunks),
                    reply.headers.get("etag"),
                    reply.headers.get("last-modified"),
                )
        except httpx.TimeoutException as exc:
            # Every wait is cut at the deadline, so any time-out means the whole fetch ran out.
            raise FetchError(
                f"timed out: not fetched within {self.settings.timeout:g} s (fetch_timeout bounds the whole "
                "download); stopped"
            ) from exc
        except httpx.TooManyRedirects as exc:  # pragma: no cover - redirects are followed by hand
            raise FetchError(str(exc)) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise FetchError(f"cannot connect: {exc or type(exc).__name__}") from exc
        finally:
            self._deadline.at = None

    # --- checks before each request ---------------------------------------------------

    def _check_allowed(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchError(f"only http and https URLs are fetched, not {parts.scheme or 'a bare path'}:")
        if not parts.hostname:
            raise FetchError("the URL has no host name")
        if not self.settings.allow_private:
            # Said here, before robots.txt is asked for; each connection is checked again, on the
            # address it goes to (``guarded_transport``).
            private = first_not_public(resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
            if private:
                raise refused(parts.hostname, private)
        if self.settings.respect_robots and not self._robots_allow(url):
            raise FetchError("robots.txt of the site disallows it (set respect_robots = false to ignore robots.txt)")

    def _robots_allow(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._robots:
            self._robots[origin] = self._read_robots(origin)
        rules = self._robots[origin]
        return rules is None or rules.can_fetch(self.settings.user_agent, url)

    def _read_robots(self, origin: str) -> urllib.robotparser.RobotFileParser | None:
        """The site's rules, or ``None`` for "everything allowed" (no robots.txt). As RFC 9309
        says, a robots.txt that exists but cannot be read (a server error) disallows everything."""
        rules = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        try:
            reply = self._request(origin + "/robots.txt", {})
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                return None
            rules.parse(["User-agent: *", "Disallow: /"])
            return rules
        if reply.status != 200 or reply.body is None:
            return None  # a redirect away from robots.txt: treated as none
        rules.parse(reply.body[:ROBOTS_MAX_BYTES].decode("utf-8", "replace").splitlines())
        return rules

    def _wait_turn(self, url: str) -> None:
        """Space requests to one host by the crawl delay (or the host's own, when longer)."""
        host = urlsplit(url).netloc
        delay = self.settings.crawl_delay
        origin = f"{urlsplit(url).scheme}://{host}"
        rules = self._robots.get(origin)
        if rules is not None and self.settings.respect_robots:
            asked = rules.crawl_delay(self.settings.user_agent)
            if asked is not None:
                delay = max(delay, float(asked))
        with self._lock:
            last = self._last_request.get(host)
            now = time.monotonic()
            if last is not None and now - last < delay:
                time.sleep(delay - (now - last))
            self._last_request[host] = time.monotonic()


# --- what a response holds ------------------------------------------------------------------

PAGE, FEED, SITEMAP, PDF, TEXT = "page", "feed", "sitemap", "pdf", "text"


def kind_of(response: Response) -> str:
    """What the body is, from its content type and, for XML, its first element."""
    body = response.body or b""
    content_type = response.content_type.split(";")[0].strip().lower()
    head = body[:2000].lstrip().lower()
    if content_type == "application/pdf" or body.startswith(b"%PDF-"):
        return PDF
    if b"<urlset" in head or b"<sitemapindex" in head:
        return SITEMAP
    if content_type in ("application/rss+xml", "application/atom+xml") or any(
        tag in head for tag in (b"<rss", b"<feed", b"<rdf:rdf")
    ):
        return FEED
    if content_type in ("text/html", "application/xhtml+xml") or b"<html" in head or b"<!doctype html" in head:
        return PAGE
    if content_type == "text/plain":
        return TEXT
    raise FetchError(f"not a web page, feed or sitemap (content type {content_type or 'unknown'})")


GZIP_MAGIC = b"\x1f\x8b"


def ungzip(body: bytes, limit: int) -> bytes:
    """A gzipped sitemap's bytes, stopping at ``limit`` (a small file can unpack to gigabytes)."""
    if not body.startswith(GZIP_MAGIC):
        return body
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as fh:
            data = fh.read(limit + 1)
    except (OSError, EOFError) as exc:
        raise FetchError(f"not readable gzip data ({exc})") from exc
    if len(data) > limit:
        raise FetchError(f"unpacks to more than {limit / 1e6:g} MB (max_file_mb)")
    return data


@dataclass(frozen=True)
class FeedItem:
    url: str
    title: str | None
    date: str | None
    author: str | None


@dataclass(frozen=True)
class Feed:
    title: str | None
    items: tuple[FeedItem, ...]


def parse_feed(body: bytes, base_url: str) -> Feed:
    """An RSS or Atom feed's items. A feed with broken XML is refused when nothing can be read
    from it; feedparser recovers what it can from a damaged one."""
    import feedparser

    from rag.ingest.readers import normalise_date

    parsed = feedparser.parse(body)
    items = []
    for entry in parsed.entries:
        link = entry.get("link")
        if not link:
            continue
        when = entry.get("published_parsed") or entry.get("updated_parsed")
        date = time.strftime("%Y-%m-%d", when) if when else normalise_date(entry.get("published"))
        items.append(FeedItem(urljoin(base_url, str(link)), entry.get("title") or None, date, entry.get("author")))
    if parsed.bozo and not items:
        reason = str(getattr(parsed, "bozo_exception", "") or "unknown").splitlines()[0]
        raise FetchError(f"not a readable feed (broken XML: {reason})")
    return Feed(parsed.feed.get("title") or None, tuple(items))


def parse_sitemap(body: bytes) -> tuple[list[str], list[str]]:
    """(page URLs, child sitemap URLs) of a sitemap or sitemap index."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise FetchError(f"not a readable sitemap (broken XML: {exc})") from exc
    locations = [el.text.strip() for el in root.iter() if el.tag.endswith("loc") and el.text and el.text.strip()]
    if root.tag.endswith("sitemapindex"):
        return [], locations
    return locations, []


def iter_unique(urls: list[str]) -> Iterator[str]:
    seen: set[str] = set()
    for url in urls:
        key = normalise_url(url)
        if key not in seen:
            seen.add(key)
            yield url


# --- walking sources: a URL may be a page, a feed of pages or a sitemap of pages ------------

MAX_SITEMAP_DEPTH = 2


@dataclass(frozen=True)
class Page:
    """An article page's answer: ``response.body`` is ``None`` when it is unchanged (304)."""

    url: str  # as requested: the key its documents are filed under
    response: Response
    item: FeedItem | None = None  # the feed entry that linked to it
    feed: str | None = None


@dataclass(frozen=True)
class Failure:
    url: str
    reason: str
    status: int | None = None


Validators = tuple[str | None, str | None]


def crawl(
    fetcher: Fetcher, sources: list[str], validators: dict[str, Validators] | None = None
) -> Iterator[Page | Failure]:
    """Fetch each source; a feed or sitemap yields its pages in turn. ``validators`` holds the
    (ETag, Last-Modified) of pages read before, which makes their requests conditional."""
    known = validators or {}
    done: set[str] = set()

    def page(
        url: str, item: FeedItem | None = None, feed: str | None = None, nested: bool = False
    ) -> Iterator[Page | Failure]:
        key = normalise_url(url)
        if key in done:
            return
        done.add(key)
        etag, modified = known.get(url, (None, None))
        try:
            response = fetcher.get(url, etag, modified)
            if response.body is None:
                yield Page(url, response, item, feed)
                return
            if response.body.startswith(GZIP_MAGIC):  # sitemap.xml.gz, or a server that gzips twice
                response = replace(response, body=ungzip(response.body, fetcher.settings.max_bytes))
            kind = kind_of(response)
        except FetchError as exc:
            yield Failure(url, str(exc), exc.status)
            return
        if kind == FEED and not nested:
            try:
                parsed = parse_feed(response.body or b"", response.url)
            except FetchError as exc:
                yield Failure(url, str(exc))
                return
            if not parsed.items:
                yield Failure(url, "the feed lists no items with links")
            for entry in parsed.items:
                yield from page(entry.url, entry, url, nested=True)
        elif kind == SITEMAP and not nested:
            yield from sitemap(url, response, 0)
        elif kind in (FEED, SITEMAP):
            yield Failure(url, f"a {kind} inside a feed or sitemap is not followed; index it on its own")
        else:
            yield Page(url, response, item, feed)

    def sitemap(url: str, response: Response, depth: int) -> Iterator[Page | Failure]:
        try:
            pages, children = parse_sitemap(ungzip(response.body or b"", fetcher.settings.max_bytes))
        except FetchError as exc:
            yield Failure(url, str(exc))
            return
        for child in children:
            if depth + 1 > MAX_SITEMAP_DEPTH:
                yield Failure(child, f"sitemap indexes nested deeper than {MAX_SITEMAP_DEPTH} are not followed")
                continue
            try:
                reply = fetcher.get(child)
            except FetchError as exc:
                yield Failure(child, str(exc), exc.status)
                continue
            yield from sitemap(child, reply, depth + 1)
        for location in pages:
            yield from page(location, feed=url, nested=True)

    for source in sources:
        yield from page(source)
