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
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval.squad import load_squad  # noqa: E402
from rag import RAG  # noqa: E402
from rag.chat.follow_ups import heuristic_query  # noqa: E402

DATASETS = REPO.parent / "shared" / "datasets"

CORPORA = {"news": [REPO / "examples" / "news"], "sample": [REPO / "examples" / "articles"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--show", action="store_true", help="print every follow-up and what was searched")
    args = parser.parse_args()
    conversations = json.loads((REPO / "tests" / "fixtures" / "follow_ups.json").read_text())["conversations"]
    hits = {"as asked": 0, "glued": 0, "resolved": 0}
    first_turns = 0
    total = 0
    with tempfile.TemporaryDirectory() as tmp, RAG.open(Path(tmp) / "index") as rag:
        rag.index([p for paths in CORPORA.values() for p in paths], progress=False)
        for dataset in sorted(DATASETS.glob("*.json")):
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
                history.append((question, answer.text))
    print(
        f"{len(conversations)} conversations, {total} follow-ups; first turns found: {first_turns}/{len(conversations)}"
    )
    print(f"| search built from | follow-ups whose answering passage is in the top {args.k} |")
    print("|---|---|")
    for name, count in hits.items():
        print(f"| {name} | {count}/{total} = {count / total:.3f} |")


if __name__ == "__main__":
    main()
