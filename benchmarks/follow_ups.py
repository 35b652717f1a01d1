"""How often a follow-up question retrieves the passage that answers it.

    python benchmarks/follow_ups.py [--k 5]

Conversations come from tests/fixtures/follow_ups.json (two- and three-turn conversations over
the news fixtures and the sample article, each turn with a phrase that its answering passage
contains). They are asked in order with ``RAG.ask``, each turn with the real answers to the turns
before it as history, in one library that also holds the development sets' documents (COVID-QA
papers and Amazon reviews from ../shared/datasets, when present) so that a search that lost
its subject can go astray. A follow-up counts when one of the ``k`` passages searched for it holds its
phrase. Three ways of building the search are compared on the same conversations:

- as asked: the follow-up alone;
- glued: the previous question and the follow-up together (what rag did before);
- resolved: ``rag.chat.follow_ups.heuristic_query`` (the subject tracked, pronouns replaced).

Turns with a ``referent`` key (36 follow-ups added for issue 27, over benchmarks/news and two
stories of benchmarks/stories) are also judged by key, not by reading: the rewrite that
``RAG.ask`` searched must hold every ``referent`` and none of ``not``, and the answer must hold
``answer``. ``--datasets none`` leaves the development sets out of the library.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval.metrics import contains_answer  # noqa: E402
from eval.squad import load_squad  # noqa: E402
from rag import RAG  # noqa: E402
from rag.chat.follow_ups import heuristic_query  # noqa: E402

DATASETS = REPO.parent / "shared" / "datasets"

STORIES = REPO / "benchmarks" / "stories" / "articles"
CORPORA = {
    "news": [REPO / "examples" / "news"],
    "sample": [REPO / "examples" / "articles"],
    "bench-news": [REPO / "benchmarks" / "news" / "articles"],
    "eastfield": sorted(STORIES.glob("eastfield-*.md")),
    "fares": sorted(STORIES.glob("fares-*.md")),
}


def names_referent(query: str, turn: dict) -> bool:
    """Whether a rewritten follow-up names what it refers to (and nothing it must not)."""
    lowered = query.lower()
    return all(r.lower() in lowered for r in turn["referent"]) and not any(
        n.lower() in lowered for n in turn.get("not", [])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--show", action="store_true", help="print every follow-up and what was searched")
    parser.add_argument("--datasets", default=str(DATASETS), help="folder of SQuAD sets to add, or 'none'")
    args = parser.parse_args()
    conversations = json.loads((REPO / "tests" / "fixtures" / "follow_ups.json").read_text())["conversations"]
    hits = {"as asked": 0, "glued": 0, "resolved": 0}
    keyed = {"follow-ups": 0, "rewrite names the referent": 0, "with an answer to check": 0, "answered right": 0}
    first_turns = 0
    total = 0
    with tempfile.TemporaryDirectory() as tmp, RAG.open(Path(tmp) / "index") as rag:
        rag.index([p for paths in CORPORA.values() for p in paths], progress=False)
        for dataset in [] if args.datasets == "none" else sorted(Path(args.datasets).glob("*.json")):
            rag.index_documents(load_squad(dataset).documents, progress=False)
        print(f"library: {rag.status()['documents']} documents, {rag.status()['chunks']} chunks")
        for conversation in conversations:
            history: list[tuple[str, str]] = []
            for number, turn in enumerate(conversation["turns"]):
                question, gold = turn["q"], turn["gold"]
                if number == 0:
                    found = rag.search(question, k=args.k)
                    first_turns += any(gold in p.text for p in found)
                else:
                    total += 1
                    searches = {
                        "as asked": question,
                        "glued": f"{history[-1][0]} {question}",
                        "resolved": heuristic_query(question, history),
                    }
                    for name, query in searches.items():
                        found = rag.search(query, k=args.k)
                        ok = any(gold in p.text for p in found)
                        hits[name] += ok
                        if args.show and name == "resolved":
                            print(f"{'ok ' if ok else 'MISS'} {question!r} -> {query!r}")
                answer = rag.ask(question, history=history)
                if "referent" in turn:
                    keyed["follow-ups"] += 1
                    named = names_referent(answer.query, turn)
                    keyed["rewrite names the referent"] += named
                    if turn.get("answer"):
                        keyed["with an answer to check"] += 1
                        right = answer.answerable and contains_answer(answer.text, [turn["answer"]]) > 0
                        keyed["answered right"] += right
                    if args.show and not named:
                        print(f"REFERENT {question!r} -> {answer.query!r}")
                history.append((question, answer.text))
    print(
        f"{len(conversations)} conversations, {total} follow-ups; first turns found: {first_turns}/{len(conversations)}"
    )
    print(f"| search built from | follow-ups whose answering passage is in the top {args.k} |")
    print("|---|---|")
    for name, count in hits.items():
        print(f"| {name} | {count}/{total} = {count / total:.3f} |")
    print(f"\nkeyed follow-ups: {json.dumps(keyed)}")


if __name__ == "__main__":
    main()
