"""Benchmarks of kustom-app, run with ``python -m bench <name>`` (``make bench``).

Each benchmark prints a Markdown table and appends its results to
``bench/results/<name>.json`` so runs can be compared over time.
"""
