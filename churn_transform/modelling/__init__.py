"""Modelling: from gold tables to a registered model version, and whether it serves.

``transformer`` (the features shared by training and serving), ``model`` (the calibrated
pipeline), ``training`` (splits, fit, metrics), ``segments``, ``campaign`` and ``card`` (what a
version is judged and described by), ``artifact`` and ``explanation`` (its files and reasons),
``promotion`` (the gate that makes a version the champion, with a typed outcome), ``rollback``
(the champion's history and the way back). Imports the library's root only.
"""
