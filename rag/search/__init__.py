"""Search: candidates from the backends, fused, filtered and reranked into passages."""
