"""ETL: the raw KKBox files into the lake, and the lake's tables into the feature store.

``ingest`` runs raw -> bronze (``bronze``) -> silver (``silver/``), after the raw files' checks
(``audit``, ``fingerprint``) and before the snapshot's own (``validation``, whose fast path is
``silver.statistics``); ``increments`` lands a month on it; ``gold`` builds a cohort's features
(``features``, ``cleaning``); ``retention`` collects what the lake no longer needs;
``feature_store`` publishes a cohort to Feast. Imports the library's root only.
"""
