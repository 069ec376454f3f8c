"""Benchmarks that time cnnlab against report-style code doing the same work, side by side in one process.

`timing` holds the median-of-repeats timer and the comparison record, `registry` the named comparisons and the context
they share, `training` the training-side comparisons and `suite` runs a selection and writes bench.json. A new group of
comparisons is one module that decorates its functions with `registry.register` and is listed in `suite.MODULES`.
"""
