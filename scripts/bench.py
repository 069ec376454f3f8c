#!/usr/bin/env python
"""The benchmark as a script: `python scripts/bench.py [overrides]` is `cnnlab-bench [overrides]`."""

from cnnlab.benchmark import main

if __name__ == "__main__":
    main()
