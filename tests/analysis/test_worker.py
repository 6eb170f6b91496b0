"""Tests of repl_mm.analysis.worker: one measurement in a process of its own."""
import sys

from repl_mm.analysis.worker import run_worker

WORKER = ('import json, sys\n'
          'spec = json.load(open(sys.argv[1]))\n'
          'if spec["fail"]: raise ValueError("no such variant")\n'
          'json.dump({"twice": 2 * spec["n"]}, open(sys.argv[2], "w"))\n')


def test_the_result_of_a_worker_or_the_line_that_says_why_it_failed(tmp_path):
    command = [sys.executable, '-c', WORKER]
    assert run_worker(command, dict(n=21, fail=False), str(tmp_path / 'ok')) == {'twice': 42}
    failed = run_worker(command, dict(n=21, fail=True), str(tmp_path / 'bad'))
    assert failed == {'error': 'ValueError: no such variant', 'log': f'{tmp_path}/bad.log'}
