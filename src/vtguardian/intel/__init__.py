"""Intelligence: providers, the lookup queue, the cache and the lookup flow."""
