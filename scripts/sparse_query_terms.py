"""What the trained sparse retriever makes of a text query: its heaviest terms, where given words rank among
them, and the terms its top hit shares with it (what the app's explanation view shows).

Run after `python -m mmr train lsr`:

    PYTHONPATH=. .venv/bin/python scripts/sparse_query_terms.py "a red flower" --words flower red
"""

from __future__ import annotations

import argparse

import numpy as np

from mmr.methods.lsr.training import NAME
from mmr.service import SearchService
from mmr.types import Query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query")
    parser.add_argument("--words", nargs="*", default=[], help="terms whose rank in the query vector to print")
    parser.add_argument("--collection", default="stamps")
    parser.add_argument("--top", type=int, default=8, help="how many terms of each list to print")
    args = parser.parse_args()

    service = SearchService.load(retriever_names=[NAME], collection_names=[args.collection])
    retriever = service.retrievers.get((NAME, args.collection))
    if retriever is None:
        raise SystemExit(service.load_errors.get((NAME, args.collection), f"no {NAME} index on {args.collection}"))
    query = Query(text=args.query)
    vector = retriever.encode_query(query, whole=True)
    terms = retriever.model.vocabulary.terms(vector.indices[np.argsort(-vector.data, kind="stable")])
    print(f"query {args.query!r}: {vector.nnz} non-zero terms; heaviest: {', '.join(terms[: args.top])}")
    for word in args.words:
        rank = f"{terms.index(word) + 1} of {len(terms)}" if word in terms else "not among them"
        print(f"  {word!r}: {rank}")
    result = service.search(query, [NAME], args.collection, k=1, explain=True)[0]
    if result.hits:
        hit = result.hits[0]
        shared = [entry["term"] for entry in result.explanations[hit.doc_id]["shared_terms"][: args.top]]
        text = service.document(args.collection, hit.doc_id).text
        print(f"top hit {hit.doc_id} ({text!r}), heaviest shared terms: {', '.join(shared)}")


if __name__ == "__main__":
    main()
