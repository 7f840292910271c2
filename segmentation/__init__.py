"""segmentation stage package."""
