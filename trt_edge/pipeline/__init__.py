"""The pipeline over all stages, and the run report."""
