"""churn stage package."""
