"""Synthetic KKBox data: the real files' names, formats and quirks, with a known oracle.

See ``oracle`` for the churn drivers and ``generator.generate`` for the entry point.
"""

from churn_transform.synthetic.generator import GeneratorConfig, Summary, generate

__all__ = ["GeneratorConfig", "Summary", "generate"]
