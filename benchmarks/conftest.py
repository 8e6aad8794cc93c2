"""Benchmarks run with pytest-benchmark: `pytest benchmarks/ --benchmark-group-by=param:shape`.

Not collected by the test suite (testpaths = tests); each benchmark checks its result against
an oracle before timing it.
"""
