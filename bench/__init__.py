"""Benchmarks: bounded loopback load against a hub the benchmark starts itself."""
