"""``rag.storage.vector_file.VectorFile`` on its own: the FAISS copy follows the store, is saved only
when it holds exactly the store's chunks, and a file that is damaged, made with another model or
made for another store is rebuilt from the store instead of used."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from rag import RAG, Config
from rag.storage.store import Store
from rag.storage.vector_file import VectorFile
from tests.conftest import article, write


def _indexed(config: Config, folder: Path, count: int, first: int = 0) -> None:
    for i in range(first, first + count):
        write(folder / f"a{i:02d}.txt", f"Report {i}\n\n" + article(i, words=60))
    with RAG.open(config=config) as rag:
        rag.index([folder], progress=False)


def _reader(rag: RAG, store: Store) -> VectorFile:
    """A second VectorFile over ``store`` (a read-only connection), as another process has."""
    return VectorFile(rag.dir / "vectors.faiss", store, rag.settings, 16, rag.parts.stored_vectors, dim=lambda: 64)


def test_it_follows_the_store_and_saves_only_an_exact_copy(config: Config, tmp_path: Path) -> None:
    _indexed(config, tmp_path / "src", 4)
    with RAG.open(config=config) as rag:
        store = Store(rag.store.path, read_only=True)
        reader = _reader(rag, store)
        assert reader.matches() and set(reader.index.ids().tolist()) == set(store.chunk_ids().tolist())
        assert not reader.dirty  # loaded from a file that was in step
        before = len(reader.index.ids())
        _indexed(config, tmp_path / "src", 2, first=10)  # another handle commits and saves
        assert len(reader.index.ids()) > before  # caught up through the store's generation
        assert set(reader.index.ids().tolist()) == set(store.chunk_ids().tolist())
        held = reader.held(store.chunk_ids()[:2].tolist())
        _, ids = reader.search(np.stack(list(held.values())), 1, None)
        assert ids[:, 0].tolist() == list(held)  # each vector finds its own chunk first
        store.close()


def test_apply_after_a_commit_marks_it_for_saving(config: Config, tmp_path: Path) -> None:
    _indexed(config, tmp_path / "src", 3)
    with RAG.open(config=config) as rag:
        vectors = rag.parts.vector_file
        ids = rag.store.chunk_ids()
        gone = int(ids[0])
        vectors.index  # noqa: B018  (in step first, as prepare does)
        matrix = np.stack(list(vectors.held([gone]).values()))
        vectors.apply([gone], [], matrix[:0])
        assert vectors.dirty and gone not in set(vectors.index.ids().tolist())


def test_a_damaged_file_or_one_of_another_store_is_rebuilt_not_used(config: Config, tmp_path: Path) -> None:
    _indexed(config, tmp_path / "src", 3)
    other = config.replace(index_dir=tmp_path / "other")
    _indexed(other, tmp_path / "other-src", 3, first=50)
    # The other store's file beside this store: same chunk ids, other texts.
    shutil.copy(other.index_dir / "vectors.faiss", config.index_dir / "vectors.faiss")
    with RAG.open(config=config) as rag:
        vectors = rag.parts.vector_file
        assert not vectors.matches()
        wanted = {cid: vec for ids, matrix in rag.parts.stored_vectors(rag.store.chunk_ids().tolist())
                  for cid, vec in zip(ids.tolist(), matrix, strict=True)}  # fmt: skip
        held = vectors.held(list(wanted))
        assert all(np.allclose(held[cid], vec) for cid, vec in wanted.items()), "the other store's vectors were used"
        assert vectors.dirty
        vectors.save()
        assert vectors.matches() and not vectors.dirty
    (config.index_dir / "vectors.faiss").write_bytes(b"not a faiss file")
    with RAG.open(config=config) as rag:
        assert not rag.parts.vector_file.matches()
        assert set(rag.parts.vector_file.index.ids().tolist()) == set(rag.store.chunk_ids().tolist())
        assert rag.parts.vector_file.dirty  # a writer saves a good one on its way out
