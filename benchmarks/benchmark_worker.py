"""One benchmark measurement in a fresh process: ``python benchmarks/benchmark_worker.py
SPEC.json RESULT.json``.

``SPEC.json`` holds the keyword arguments of ``cost_benchmark.measure_variant``;
the result goes to ``RESULT.json``, progress to stdout. ``benchmarks/benchmark.py`` starts one per
variant and repeat, so that no variant inherits another's allocator state, caches or peak memory.
"""
import json
import sys

from mmengine.logging import print_log

import repl_mm  # noqa: F401  (registers the RepL classes)
from cost_benchmark import measure_variant
from repl_mm.engine.cli import run_tool


def main() -> None:
    spec_path, result_path = sys.argv[1:3]
    with open(spec_path) as file:
        spec = json.load(file)
    result = measure_variant(**spec, log=lambda message: print_log(message, logger='current'))
    with open(result_path, 'w') as file:
        json.dump(result, file)


if __name__ == '__main__':
    run_tool(main)
