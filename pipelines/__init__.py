"""pipelines stage package."""
