"""The index/reindex cycle through the public API, with the fast hashing encoder."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from embeddings import VectorIndex
from rag import RAG, Config, IndexMismatchError, NoIndexError, NotFoundError
from rag.types import Document
from tests.conftest import article, assert_consistent, write


def corpus(folder: Path, n: int) -> list[Path]:
    return [write(folder / f"doc{i:03d}.txt", article(i)) for i in range(n)]


def test_add_change_delete_cycle_on_a_folder(rag: RAG, tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    files = corpus(folder, 5)

    first = rag.index([folder], progress=False)
    assert (first.added, first.updated, first.unchanged, first.removed) == (5, 0, 0, 0)
    assert first.documents == 5 and first.embedded == first.chunks > 0

    again = rag.index([folder], progress=False)
    assert (again.added, again.updated, again.unchanged, again.removed, again.embedded) == (0, 0, 5, 0, 0)

    files[1].write_text(article(1) + " A new closing sentence about something else.", encoding="utf-8")
    files[2].unlink()
    write(folder / "sub" / "new.md", "# Fresh\n\nA brand new article arrives today.")
    changed = rag.index([folder], progress=False)
    assert (changed.added, changed.updated, changed.unchanged, changed.removed) == (1, 1, 3, 1)
    # Only the changed document's new chunks reach the model; its unchanged ones are cached.
    assert 0 < changed.embedded <= len(rag.store.chunks_for(_id(rag, files[1]))) + 1
    assert changed.documents == 5
    rag.close()
    assert_consistent(rag.dir)


def _id(rag: RAG, path: Path) -> str:
    (doc_id,) = rag.store.document_ids_for_path(str(path.resolve()))
    return doc_id


def test_indexing_one_file_never_removes_others(rag: RAG, tmp_path: Path) -> None:
    a, _ = corpus(tmp_path / "f", 2)
    rag.index([tmp_path / "f"], progress=False)
    summary = rag.index([a], progress=False)
    assert (summary.unchanged, summary.removed, summary.documents) == (1, 0, 2)


def test_an_unreadable_or_emptied_file_keeps_its_indexed_version(rag: RAG, tmp_path: Path) -> None:
    folder = tmp_path / "f"
    files = corpus(folder, 3)
    rag.index([folder], progress=False)
    files[0].write_text("", encoding="utf-8")
    files[1].unlink()
    files[1].symlink_to(tmp_path / "nowhere.txt")  # a dangling link cannot be read
    summary = rag.index([folder], progress=False)
    reasons = {Path(s.path).name: s.reason for s in summary.skipped}
    assert "empty document" in reasons["doc000.txt"]
    assert reasons["doc001.txt"].startswith("cannot read")
    assert (summary.removed, summary.documents) == (0, 3)


def test_jsonl_lines_are_documents_and_a_dropped_line_is_removed(rag: RAG, tmp_path: Path) -> None:
    records = [{"id": f"r{i}", "text": article(i), "title": f"T{i}"} for i in range(3)]
    feed = write(tmp_path / "feed.jsonl", "\n".join(json.dumps(r) for r in records))
    assert rag.index([feed], progress=False).added == 3
    feed.write_text("\n".join(json.dumps(r) for r in records[:2]), encoding="utf-8")
    summary = rag.index([feed], progress=False)
    assert (summary.unchanged, summary.removed, summary.documents) == (2, 1, 2)
    assert rag.document("r0").title == "T0"


def test_remove_by_id_and_by_path(rag: RAG, tmp_path: Path) -> None:
    files = corpus(tmp_path / "f", 3)
    rag.index([tmp_path / "f"], progress=False)
    doc_id = _id(rag, files[0])
    assert rag.remove(doc_id) == [doc_id]
    assert rag.remove(str(files[1])) == [_id_for(files[1])]
    with pytest.raises(NotFoundError, match="no document has the id, path or title 'nope'"):
        rag.remove("nope")
    assert rag.store.counts()["documents"] == 1
    # A removed file that is still on disk comes back when its folder is indexed again.
    assert rag.index([tmp_path / "f"], progress=False).added == 2
    rag.close()
    assert_consistent(rag.dir)


def _id_for(path: Path) -> str:
    from rag.ingest.sources import load_documents

    return load_documents(path.resolve(), path.read_bytes())[0][0].id


def test_a_stale_or_damaged_faiss_file_is_rebuilt_from_the_store(config: Config, tmp_path: Path) -> None:
    corpus(tmp_path / "f", 4)
    with RAG.open(config=config) as rag:
        rag.index([tmp_path / "f"], progress=False)
    vectors = config.index_dir / "vectors.faiss"
    vectors.write_bytes(vectors.read_bytes()[:100])  # truncated, as by a crash mid-write
    before = vectors.read_bytes()
    assert_consistent(config.index_dir, file_must_match=False)  # a reader repairs in memory
    assert vectors.read_bytes() == before, "a reader wrote the vector file"
    with RAG.open(config=config) as rag:
        assert rag.repair_vectors() is True  # a writer repairs it on disk
        assert rag.repair_vectors() is False
    assert_consistent(config.index_dir)
    vectors.unlink()
    assert_consistent(config.index_dir, file_must_match=False)
    with RAG.open(config=config) as rag:
        rag.index([tmp_path / "f"], progress=False)  # any write run saves a missing file too
    assert_consistent(config.index_dir)


def test_search_by_vector_finds_the_matching_chunk(rag: RAG, tmp_path: Path) -> None:
    corpus(tmp_path / "f", 6)
    rag.index([tmp_path / "f"], progress=False)
    target = rag.store.chunks_for(_id(rag, tmp_path / "f" / "doc003.txt"))[0]
    query = rag.encoder.encode_queries([target.text])
    scores, ids = rag.parts.vectors.search(query, 3)
    assert ids[0][0] == target.id and scores[0][0] == pytest.approx(1.0, abs=1e-5)


def test_opening_with_another_model_is_refused_with_the_fix(config: Config, tmp_path: Path) -> None:
    corpus(tmp_path / "f", 2)
    with RAG.open(config=config) as rag:
        rag.index([tmp_path / "f"], progress=False)
    with pytest.raises(IndexMismatchError) as caught:
        RAG.open(config=config.replace(model="hashing-32"))
    message = str(caught.value)
    assert "model 'hashing-64' (asked for 'hashing-32')" in message
    assert "rag index --rebuild" in message
    # Leaving the model unset opens the index as built.
    with RAG.open(config=config.replace(model=None)) as rag:
        assert rag.settings.model == "hashing-64"


def test_rebuild_applies_new_model_and_chunk_settings(config: Config, tmp_path: Path) -> None:
    corpus(tmp_path / "f", 3)
    with RAG.open(config=config) as rag:
        before = rag.index([tmp_path / "f"], progress=False).chunks
    new = config.replace(model="hashing-32", chunk_tokens=32, chunk_overlap=0)
    with RAG.open(config=new, rebuild=True) as rag:
        summary = rag.rebuild(progress=False)
        assert summary.chunks > before and summary.embedded == summary.chunks
        assert rag.parts.vectors.dim == 32
    with RAG.open(config=Config(index_dir=config.index_dir)) as rag:
        assert (rag.settings.model, rag.settings.chunk_tokens) == ("hashing-32", 32)
        assert rag.index([tmp_path / "f"], progress=False).embedded == 0
    assert_consistent(config.index_dir)


def test_reading_a_missing_index_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(NoIndexError, match="rag index PATH --index-dir"):
        RAG.open(tmp_path / "none", create=False)
    assert not (tmp_path / "none").exists()


def test_embeddings_are_never_computed_twice_for_the_same_text(rag: RAG) -> None:
    # Two documents (a question set's, which come with their own ids) holding one text.
    same = "Identical text in two documents."
    docs = [Document(name, name, name, name.upper(), None, same) for name in ("x", "y")]
    summary = rag.index_documents(docs, progress=False)
    assert (summary.chunks, summary.embedded) == (2, 1)


def test_the_same_file_under_another_name_is_already_indexed_and_adds_nothing(rag: RAG, tmp_path: Path) -> None:
    text = "# Harbor tunnel\n\n" + article(1)
    first = write(tmp_path / "a" / "tunnel.md", text)
    rag.index([first], progress=False)
    (doc_id,) = [d for d, _ in rag.store.document_paths()]
    # Under another name in another folder, later; and twice in one run (read before stored).
    again = write(tmp_path / "b" / "tunnel (1).md", text)
    write(tmp_path / "c" / "one.md", "# Other\n\n" + article(2))
    write(tmp_path / "c" / "two.md", "# Other\n\n" + article(2))
    summary = rag.index([again, tmp_path / "c"], progress=False)
    assert (summary.added, summary.documents) == (1, 2)
    said = {s.path: s.reason for s in summary.skipped}
    assert said[str(again.resolve())] == f"already indexed as {doc_id} ({first.resolve()})"
    assert said[str((tmp_path / "c" / "two.md").resolve())].startswith("already indexed as one-")
    # Once the first file is gone, its twin is indexed (or moved: the same bytes) next time.
    first.unlink()
    summary = rag.index([tmp_path / "a", again], progress=False)
    assert summary.skipped == () and rag.store.counts()["documents"] == 2
    assert [p for _, p in rag.store.document_paths() if p.endswith("tunnel (1).md")] == [str(again.resolve())]


def test_vector_index_round_trip_remove_and_ivf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from embeddings import vector_index

    monkeypatch.setattr(vector_index, "IVF_MIN_VECTORS", 500)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(800, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(10, 810, dtype=np.int64)
    for kind in ("flat", "ivf"):
        index = VectorIndex(16, kind, nprobe=64)
        index.add(ids, vectors)
        assert index.is_approximate == (kind == "ivf")
        assert index.remove(ids[:100]) == 100
        index.save(tmp_path / f"{kind}.faiss", {"generation": 7})
        loaded, stamp = VectorIndex.load(tmp_path / f"{kind}.faiss", nprobe=64)
        assert stamp["generation"] == 7 and loaded.count == 700 and loaded.is_approximate == (kind == "ivf")
        _, found = loaded.search(vectors[100:110], 1)
        assert found[:, 0].tolist() == ids[100:110].tolist()
        loaded.set_nprobe(1)  # fewer clusters searched: still answers, maybe less exactly
        assert loaded.search(vectors[100:101], 5)[1].shape == (1, 5)
        # Vectors by id, from memory: a removed id is left out, the others come back exactly,
        # after a removal and after a save and load (the inverted file keeps its id map).
        for held in (index, loaded):
            got = held.vectors(ids[95:105])
            assert sorted(got) == ids[100:105].tolist()
            assert all(np.allclose(got[int(cid)], vectors[int(cid) - 10]) for cid in ids[100:105])
            assert held.vectors(ids[:3]) == {} and held.vectors(np.array([], dtype=np.int64)) == {}
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))


def test_an_ivf_file_saved_without_an_id_map_gets_one_on_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import faiss

    from embeddings import vector_index

    monkeypatch.setattr(vector_index, "IVF_MIN_VECTORS", 500)
    vectors = np.random.default_rng(1).normal(size=(600, 8)).astype(np.float32)
    index = VectorIndex(8, "ivf")
    index.add(np.arange(1, 601, dtype=np.int64), vectors)
    index._index.set_direct_map_type(faiss.DirectMap.NoMap)  # as files were saved before
    index.save(tmp_path / "old.faiss", {})
    loaded, _ = VectorIndex.load(tmp_path / "old.faiss")
    assert np.allclose(loaded.vectors(np.array([7]))[7], vectors[6])
    loaded.remove(np.array([7, 8]))
    assert sorted(loaded.vectors(np.array([7, 8, 9]))) == [9]


def test_progress_counts_chunks_embedded_as_well_as_files(
    rag: RAG, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One big JSONL file: the files bar stays at 0/1 while its chunks embed, so the chunk bar
    must move, with a rate, and end at the number embedded."""
    feed = write(tmp_path / "feed" / "big.jsonl", "\n".join(
        json.dumps({"id": f"r{n}", "title": f"R{n}", "text": article(n)}) for n in range(12)
    ))  # fmt: skip
    summary = rag.index([feed], progress=True)
    err = capsys.readouterr().err
    assert summary.embedded > rag.config.encode_group  # several groups, so the bar moves in steps
    steps = re.findall(r"embedding: +\d+%\|[^|]*\| (\d+)/(\d+) \[[^\]]*chunk/s\]", err)
    assert steps, err[-500:]
    done = [int(n) for n, _ in steps]
    assert done == sorted(done) and done[-1] == summary.embedded and int(steps[-1][1]) == summary.embedded
    assert "indexing" in err and "file" in err
