"""Task adapters: data loading, model heads, metrics. Text classification first."""
