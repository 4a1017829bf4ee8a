"""``harness replay``: a strategy's decisions simulated on a recorded full
grid, resampled over its seeds, and an A/A check of the report's test."""
