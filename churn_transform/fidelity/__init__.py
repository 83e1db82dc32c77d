"""How closely a KKBox raw folder (the generator's or the real files) matches the real data.

``measure`` streams every file once and returns the statistics that matter; ``compare`` sets each
beside its reference figure and gives a verdict. The reference figures live in a data file with
their sources (``benchmarks/kkbox_reference.yaml``); ``load_references`` reads it.
"""

from churn_transform.fidelity.measures import measure
from churn_transform.fidelity.verdict import Finding, Reference, compare, load_references, table

__all__ = ["Finding", "Reference", "compare", "load_references", "measure", "table"]
