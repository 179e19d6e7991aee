#!/usr/bin/env python3
"""Lightning's batch-size search (`binsearch` mode), replayed against a known limit.

The reference `oomguard tune` is measured against, in the benchmark
(scripts/bench-supervise.py) and in the tests. Lightning's
`_run_binary_scaling` (lightning/pytorch/tuner/batch_size_scaling.py): start at
`start`, double after each success until the first OOM, then bisect between
the largest success and the smallest failure until they are 1 apart; each
size tried is one trial.

Usage: lightning_binsearch.py LIMIT [START]   prints "TRIALS LANDING"
"""
import sys


def binsearch(limit, start=8):
    """Trials Lightning's binsearch takes, and the batch it lands on, when batches up to `limit` fit."""
    low, high, size, trials = 1, None, start, 0
    while True:
        trials += 1
        if size <= limit:
            low = size
            if high is not None:
                if high - low <= 1:
                    break
                size = (high + low) // 2
            else:
                size *= 2
        else:
            high = size
            size = (high + low) // 2
            if high - low <= 1:
                break
    return trials, low


if __name__ == "__main__":
    limit = int(sys.argv[1])
    start = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    print("%d %d" % binsearch(limit, start))
