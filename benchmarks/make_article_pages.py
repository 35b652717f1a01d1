"""Write the article-page fixtures that score HTML extractors (tests/fixtures/pages/).

Each of the six bundled articles is rendered through six page layouts seen on news sites: a
WordPress post with comments, a CMS page with JSON-LD and a cookie banner, an old table layout,
a blog with a Disqus-style thread, an AMP page, and a magazine page whose <article> also holds
related stories and an author bio. Around the story sit navigation, share buttons, newsletter
promotions, "most read" lists, scripts, captions and footers, and the publication date is
written a different way in each (meta tags, JSON-LD, <time>, visible text only, the URL).

``truth.json`` records, per page, the story's paragraphs, title and publication date. The pages
are generated, so they are regular where real sites are not; they are what the extractor
benchmark (benchmarks/extractors.py) and tests/test_web.py read. Run it again after changing
a layout: ``python benchmarks/make_article_pages.py``.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "pages"


@dataclass(frozen=True)
class Story:
    slug: str
    title: str
    author: str
    published: str  # YYYY-MM-DD
    modified: str
    paragraphs: tuple[str, ...]


MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
ABBR = ["Jan.", "Feb.", "March", "April", "May", "June", "July", "Aug.", "Sept.", "Oct.", "Nov.", "Dec."]


def stories() -> list[Story]:
    found = []
    for path in sorted((ROOT / "examples" / "news").glob("*.md")):
        lines = path.read_text(encoding="utf-8").split("\n")
        title = lines[0].lstrip("# ").strip()
        author = lines[2].removeprefix("By ").strip()
        dated = lines[3]
        body = "\n".join(lines[4:]).strip()
        paragraphs = tuple(p.strip() for p in body.split("\n\n") if p.strip())
        match = re.search(r"\d{4}-\d{2}-\d{2}", dated)
        published = match.group(0) if match else "2026-09-16"
        modified = "2026-09-17" if dated.startswith("Updated") else published
        found.append(Story(path.stem, title, author, published, modified, paragraphs))
    sample = next((ROOT / "examples" / "articles").glob("*.txt")).read_text(encoding="utf-8")
    sample = re.sub(r"\A\s*date \d{4}-\d{2}-\d{2}\s*", "", sample)
    paragraphs = tuple(p.strip() for p in sample.split("\n\n") if p.strip())
    found.append(
        Story(
            "panjshir", "Panjshir Valley remains a flashpoint", "Staff Reporter", "2021-09-21", "2021-09-22", paragraphs
        )
    )
    return found


def e(text: str) -> str:
    return html.escape(text, quote=True)


def long_date(iso: str) -> str:
    y, m, d = (int(x) for x in iso.split("-"))
    return f"{MONTHS[m - 1]} {d}, {y}"


def abbr_date(iso: str) -> str:
    y, m, d = (int(x) for x in iso.split("-"))
    return f"{ABBR[m - 1]} {d}, {y}"


NAV = """<nav class="site-nav"><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/business">Business</a></li><li><a href="/science">Science</a></li><li><a href="/opinion">Opinion</a></li>
<li><a href="/subscribe">Subscribe for $1 a week</a></li></ul></nav>"""
SCRIPT = """<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}
gtag('config','G-XXXX',{page_type:'article',section:'news'});var ads={slots:['top','mid','bottom']};</script>"""
COOKIES = """<div id="cookie-banner" class="consent"><p>We use cookies and similar technologies to
personalise content and ads, to provide social media features and to analyse our traffic. We also share
information about your use of our site with our social media, advertising and analytics partners who may
combine it with other information that you have provided to them.</p><button>Accept all</button>
<button>Manage preferences</button></div>"""
NEWSLETTER = """<div class="promo newsletter"><h3>Get the morning briefing</h3><p>Sign up for our
newsletter to get the day's most important stories delivered to your inbox every weekday morning.</p>
<form><input type="email" placeholder="Email address"><button>Sign up</button></form></div>"""
SHARE = """<div class="share"><a href="#">Share on Facebook</a> <a href="#">Share on X</a>
<a href="#">Email this story</a> <a href="#">Print</a></div>"""
FOOTER = """<footer class="site-footer"><p>© 2026 The Daily Gazette. All rights reserved.</p>
<ul><li><a href="/about">About us</a></li><li><a href="/privacy">Privacy policy</a></li>
<li><a href="/terms">Terms of service</a></li><li><a href="/contact">Contact the newsroom</a></li></ul></footer>"""
COMMENTS = [
    ("River_Watcher", "This is exactly what I have been saying for years and nobody in charge ever listens to us."),
    ("jm1984", "Does anyone know where the full report can be downloaded? The link in the story does not work for me."),
    ("Pat K.", "Great reporting as always, thank you for covering this when the bigger outlets would not bother."),
    (
        "skeptic42",
        "I will believe it when I see it. They promised the same thing last year and nothing changed at all.",
    ),
]


def related(others: list[Story]) -> str:
    items = "".join(f'<li><a href="/news/{o.slug}">{e(o.title)}</a></li>' for o in others)
    return f'<div class="related"><h3>Related stories</h3><ul>{items}</ul></div>'


def most_read(others: list[Story]) -> str:
    items = "".join(
        f"<li><a href='/n/{o.slug}'>{e(o.title)}</a><span>{len(o.title)} comments</span></li>" for o in others
    )
    return f"<aside class='most-read'><h2>Most read</h2><ol>{items}</ol></aside>"


def comments_html(tag: str = "div") -> str:
    rows = "".join(
        f'<{tag} class="comment"><span class="author">{e(who)}</span><p>{e(text)}</p><a href="#">Reply</a></{tag}>'
        for who, text in COMMENTS
    )
    return f'<section id="comments"><h2>{len(COMMENTS)} comments</h2>{rows}</section>'


def paragraphs_html(story: Story, every: int = 0, insert: str = "") -> str:
    out = []
    for i, p in enumerate(story.paragraphs):
        out.append(f"<p>{e(p)}</p>")
        if every and i == every - 1:
            out.append(insert)
    return "\n".join(out)


def wordpress(story: Story, others: list[Story]) -> str:
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>{e(story.title)} – Riverside Local News</title>{SCRIPT}
<link rel="canonical" href="https://riverside.example/{story.published[:4]}/{story.slug}/">
</head><body class="single-post"><header><div class="logo">Riverside Local News</div>{NAV}</header>
<div id="page"><main id="main"><article class="post type-post">
<header class="entry-header"><h1 class="entry-title">{e(story.title)}</h1>
<div class="entry-meta">Posted on <time class="entry-date published" datetime="{story.published}T08:30:00-04:00">
{long_date(story.published)}</time> by <span class="author vcard">{e(story.author)}</span></div></header>
<div class="entry-content">{paragraphs_html(story)}</div>{SHARE}
<footer class="entry-footer">Categories: <a href="/c/news">News</a>, <a href="/c/local">Local</a></footer></article>
{comments_html()}</main><aside id="secondary">{most_read(others)}{NEWSLETTER}</aside></div>{FOOTER}</body></html>"""


def newsroom(story: Story, others: list[Story]) -> str:
    ld = json.dumps(
        {
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "headline": story.title,
            "datePublished": f"{story.published}T14:05:00Z",
            "dateModified": f"{story.modified}T09:00:00Z",
            "author": [{"@type": "Person", "name": story.author}],
            "publisher": {"@type": "Organization", "name": "Global Wire"},
        }
    )
    figure = '<figure><img src="/img/1.jpg" alt=""><figcaption>A file photo. (Photo: Global Wire)</figcaption></figure>'
    return f"""<!DOCTYPE html><html><head><title>{e(story.title)} | Global Wire</title>
<meta property="og:title" content="{e(story.title)}"><meta property="og:site_name" content="Global Wire">
<meta property="og:url" content="https://globalwire.example/story/{story.slug}">
<script type="application/ld+json">{ld}</script>{SCRIPT}</head><body>{COOKIES}
<div class="top-bar">{NAV}<a class="login" href="/login">Sign in</a></div>
<div class="container"><div class="headline-block"><h1>{e(story.title)}</h1>
<p class="byline">By {e(story.author)}, Global Wire</p><p class="timestamp">Updated {abbr_date(story.modified)}</p></div>
<div class="story-body">{figure}{paragraphs_html(story, 2, NEWSLETTER)}{related(others)}</div>
<div class="sidebar">{most_read(others)}</div></div>{FOOTER}</body></html>"""


def legacy(story: Story, others: list[Story]) -> str:
    rows = "".join(f"<tr><td><font size=2>{e(p)}</font></td></tr>" for p in story.paragraphs)
    links = "".join(f"<a href='/archive/{o.slug}.html'>{e(o.title)}</a><br>" for o in others)
    talk = "".join(f"<tr><td><b>{e(w)} wrote:</b><br>{e(t)}</td></tr>" for w, t in COMMENTS)
    return f"""<html><head><title>{e(story.title)} - The Valley Courier</title></head>
<body bgcolor="#ffffff"><table width="100%"><tr><td colspan=2><img src="/logo.gif"> THE VALLEY COURIER
| <a href="/">Front page</a> | <a href="/sports">Sports</a> | <a href="/classifieds">Classifieds</a></td></tr>
<tr><td width="160" valign="top"><b>Archive</b><br>{links}</td><td valign="top">
<table><tr><td><font size=5><b>{e(story.title)}</b></font></td></tr>
<tr><td><i>By {e(story.author)} - Posted: {abbr_date(story.published)} 10:45 a.m. ET</i></td></tr>
{rows}</table><hr><table><tr><td><b>Reader comments</b></td></tr>{talk}</table></td></tr>
<tr><td colspan=2><font size=1>Copyright 2026 The Valley Courier. Reproduction prohibited.</font></td></tr>
</table></body></html>"""


def blog(story: Story, others: list[Story]) -> str:
    d = story.published
    date = f"{int(d[8:])} {MONTHS[int(d[5:7]) - 1]} {d[:4]}"
    thread = "".join(
        f'<div class="post-message"><div class="user">{e(w)}</div><div class="msg">{e(t)}</div></div>'
        for w, t in COMMENTS * 2
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(story.title)}</title>
<meta name="description" content="{e(story.paragraphs[0][:150])}">{SCRIPT}</head><body>
<div id="header"><h2 class="site-title">Notes from the Newsroom</h2>{NAV}</div>
<div id="content"><div class="post-wrapper"><h1 class="post-title">{e(story.title)}</h1>
<div class="post-info">{date} · {e(story.author)} · 4 min read</div>
<div class="entry-content">{paragraphs_html(story)}</div>
<div class="tags">Tags: <a href="/t/news">news</a> <a href="/t/world">world</a></div></div>
<div id="disqus_thread"><h3>Join the discussion</h3>{thread}</div></div>
<div id="sidebar">{related(others)}{NEWSLETTER}</div>{FOOTER}</body></html>"""


def amp(story: Story, others: list[Story]) -> str:
    ad = '<div class="ad-slot"><amp-ad width="300" height="250" type="doubleclick"></amp-ad><span>Advertisement</span></div>'
    return f"""<!doctype html><html amp lang="en"><head><meta charset="utf-8">
<title>{e(story.title)}</title><meta property="article:published_time" content="{story.published}T06:00:00+00:00">
<meta property="article:modified_time" content="{story.modified}T18:00:00+00:00">
<meta property="og:site_name" content="Metro Daily"><link rel="canonical" href="https://metro.example/{story.slug}">
<script async src="https://cdn.ampproject.org/v0.js"></script>
<style amp-custom>body{{font-family:serif}}.ad-slot{{margin:1em 0}}</style></head><body>
<main><header class="amp-header"><a href="/">Metro Daily</a> <button>Menu</button></header>
<article><h1>{e(story.title)}</h1><div class="meta">{e(story.author)}</div>
{paragraphs_html(story, 1, ad)}</article>{most_read(others)}</main>
<amp-consent id="consent" layout="nodisplay"><div class="consent-ui">This site uses cookies to improve
your experience and to show you relevant advertising. By continuing you agree.<button>OK</button></div></amp-consent>
{FOOTER}</body></html>"""


def magazine(story: Story, others: list[Story]) -> str:
    y, m, d = (int(x) for x in story.published.split("-"))
    bio = (
        f'<div class="author-bio"><img src="/a.png"><p>{e(story.author)} is a staff writer who covers science, '
        "health and the economy. Before joining the magazine she reported from four continents.</p></div>"
    )
    return f"""<!DOCTYPE html><html><head><title>{e(story.title)} — The Weekly Review</title>
<meta name="author" content="{e(story.author)}">{SCRIPT}</head><body>{NAV}
<article class="feature"><div class="kicker">Analysis</div><h1>{e(story.title)}</h1>
<p class="standfirst">What the latest figures mean, and what comes next.</p>
<span class="date">Published {MONTHS[m - 1]} {d}, {y}</span>
<div class="body">{paragraphs_html(story)}</div>{SHARE}{bio}{related(others)}</article>
{comments_html("article")}{FOOTER}
<div class="modal" id="gdpr"><p>Your privacy matters. We and our 812 partners store and access information on your
device such as cookies. You can accept or manage your choices at any time.</p></div></body></html>"""


LAYOUTS = {
    "wordpress": wordpress,
    "newsroom": newsroom,
    "legacy": legacy,
    "blog": blog,
    "amp": amp,
    "magazine": magazine,
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    truth: dict[str, dict[str, object]] = {}
    all_stories = stories()
    for i, story in enumerate(all_stories):
        others = [o for o in all_stories if o is not story][:4]
        for name, layout in LAYOUTS.items():
            file = f"{story.slug}-{name}.html"
            (OUT / file).write_text(layout(story, others), encoding="utf-8")
            truth[file] = {
                "title": story.title,
                "date": story.published,
                "paragraphs": list(story.paragraphs),
                "layout": name,
                "story": i,
            }
    (OUT / "truth.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(truth)} pages to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
