"""MLflow Projects entry points: one thin module per step, over the ``churn_transform`` library."""
