"""KKBox churn platform library."""
