"""Benchmarks that print figures: step times and teacher tokens per arm (`steps`), generation throughput
(`generation`) and one training step against a peer trainer (`peer`)."""
