"""KKBox churn platform library, in wings that mirror the platform's parts.

- ``etl``: raw files into the lake: bronze, silver, gold, their audits, the feature store.
- ``modelling``: from gold to a registered model version, and whether it becomes the champion.
- ``serving``: what the prediction service runs: the champion, request records and guards.
- ``monitoring``: what is learnt once a model serves: predictions, drift, realized quality, and
  the monthly cycle's policy and journal.
- ``synthetic`` (the generator and its oracle) and ``fidelity`` (its statistics against the
  real files').

At the root, what every wing shares: ``settings`` (the only reader of the environment),
``schema`` (column names and rules), ``lake`` (paths and versions), ``labels`` (the churn
rule) and ``dates``. A wing imports the root and the wings listed before it, never one after
it; ``serving`` imports no ``etl`` and no ``monitoring`` (the Bento packs neither).
"""
