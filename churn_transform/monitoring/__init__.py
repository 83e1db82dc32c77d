"""Monitoring: what the platform learns about its models once they serve.

``scoring`` and ``predictions`` (a cohort's batch answers in the lake, written and read back),
``quality`` (realized quality once labels land), ``estimation`` (the quality expected from the
probabilities before the labels: CBPE), ``drift`` (the traffic against the champion's
training data), ``verdict`` (a played campaign against its control group, once its cohort's
labels land), ``policy`` (the written retraining rule), ``journal`` (a monthly cycle's
progress) and ``timeline`` (which version served each day, and the switches between).
Imports the root, ``etl`` and ``modelling``.
"""
