"""The results as JSON: ``Results.to_dict()`` (schema ``isolate.results/2``, documented in
docs/results.rst), after merging and recomputing equivalence."""

from __future__ import annotations

from isolate.model.results import Results


def render_json(results: Results) -> str:
    return results.dumps()
