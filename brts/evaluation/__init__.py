"""Evaluation through lm-eval: task configs, data, running, parsing and caching (see evaluate.py)."""
