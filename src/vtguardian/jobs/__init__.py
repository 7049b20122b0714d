"""Jobs: an input, the IoC fields to check, a flow of providers, outputs and a retention.

A job keeps its events with what its flow made of their IoCs (the Event Explorer
reads them), enriches them again when a pending IoC gets its verdict, and hands
each event to its outputs once it is decided, or when its wait ran out.
"""
