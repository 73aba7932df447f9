"""Profiling: benchmarks over runners, tegrastats and rails, trtexec logs, the device catalog, reports."""
