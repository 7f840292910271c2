"""valuation stage package."""
