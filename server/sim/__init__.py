"""Simulated cameras for the demo, tests and benchmarks."""
