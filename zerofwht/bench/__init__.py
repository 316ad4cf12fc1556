"""The benchmark package: ``python -m zerofwht.bench`` (``cli``), and the one timing harness
(``timing``) that the CLI, the A/B scripts, the examples and the pytest benchmarks share.

Modules: ``cli`` (arguments, worker subprocesses, output files), ``fwht`` (the transform
section's worker), ``impls`` (what is measured: our backends, copy, dense, the public peers),
``timing`` (CPU / CUDA timing, medians, interleaved A/B), ``report`` (tables and plot),
``materialize`` (the weight-materialization section), ``machine`` (facts about the machine),
``common`` (constants).
"""
