"""Modelling: from gold tables to a registered model version, and whether that version serves.

Today the promotion gate (``promotion``). The model, its transformer, its artifact format and its
training, still at the library's root, are to move here.
"""
