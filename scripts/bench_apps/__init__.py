"""The same two tasks (one Redis INCR; a latency probe) for each system the benchmark runs."""
