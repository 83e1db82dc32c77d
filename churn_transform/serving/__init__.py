"""Serving: what the prediction service runs besides BentoML's wiring (``service.py``).

``registry`` (the one place that resolves the champion), ``follow`` (a running service follows
its alias), ``runtime`` (the served champion, metrics, request ids), ``records`` and
``plausibility`` (what a request may hold), ``guards`` and ``access`` (what the API refuses and
whom it admits), ``online_store`` (answers by subscriber id) and ``traffic`` (the traffic log).
Imports the root and ``modelling`` only: the Bento packs no ``etl`` and no ``monitoring``.
"""
