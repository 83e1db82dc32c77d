"""Monitoring: what the platform learns about its models once they serve.

Today the batch predictions in the lake (``predictions``: where ``score`` writes a cohort's
answers and ``quality`` reads them back once the labels arrive). Drift, realized quality and
the retraining policy, still at the library's root, are to move here.
"""
