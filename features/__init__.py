"""Point-in-time customer profiles and labels as Polars LazyFrames."""
