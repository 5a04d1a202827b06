"""``isolate diff``: what changed between two bundles (``load`` opens any form of a
bundle, ``compare`` compares two manifests, ``render`` writes text and Markdown)."""
