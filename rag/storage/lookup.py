"""Finding stored documents by what a person types: an id, a file or folder path, the URL a
page came from, or the start of a title (``rag show``, ``rag remove``, the web chat's reader)."""

from __future__ import annotations

from pathlib import Path

from rag.storage.store import Store
from rag.types import Document


class NotFoundError(LookupError):
    """No document matches the id, path or title given."""


class AmbiguousError(LookupError):
    """A title prefix (or a path) names more than one document where one was needed."""


def resolve(store: Store, ref: str) -> list[str]:
    """The ids of the documents ``ref`` names: a document id; the URL a page was fetched from,
    or its canonical URL; a file or folder path (every document read from it); or the start of
    one document's title, ignoring case (an exact title wins over longer ones). Raises
    NotFoundError or AmbiguousError, naming the fix."""
    if store.get_document(ref) is not None:
        return [ref]
    text = ref.strip()
    if text.startswith(("http://", "https://")):  # a URL names pages only, never a title
        found = store.document_ids_for_url(text)
        if found:
            return found
    elif text:
        found = store.document_ids_under(str(Path(text).expanduser().resolve()))
        if found:
            return found
        titles = store.titles_starting(text)
        if len(titles) == 1 or (titles and titles[0][1].casefold() == text.casefold()):
            return [titles[0][0]]
        if titles:
            shown = "; ".join(f"{title!r} ({doc_id})" for doc_id, title in titles[:5])
            raise AmbiguousError(
                f"{ref!r} starts {'more than 5' if len(titles) > 5 else len(titles)} titles: {shown}; "
                "give more of the title, or the id (`rag list --title TEXT` lists them)"
            )
    raise NotFoundError(
        f"no document has the id, path or title {ref!r}; `rag list` shows what is indexed "
        "(`rag list --title TEXT` to look one up)"
    )


def one_document(store: Store, ref: str) -> Document:
    """One document, by id, URL, path of a one-document file, or unique title prefix."""
    ids = resolve(store, ref)
    if len(ids) > 1:
        raise AmbiguousError(
            f"{ref!r} holds {len(ids)} documents ({', '.join(ids[:5])}{', …' if len(ids) > 5 else ''}); "
            "name one of them by its id"
        )
    doc = store.get_document(ids[0])
    assert doc is not None  # resolve found it; a concurrent removal is a race not worth a message
    return doc
