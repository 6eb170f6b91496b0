"""tools/make_demo_data.py says what it did: 'written' when it wrote files, 'skipped' when the
data was already up to date, and every kind prints the same summary format. Also: the
Fashion-MNIST subset it writes decodes to the first items of the source files."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from repl_mm.demo import DEFAULT_FMNIST_DIR
from repl_mm.demo.fashion_mnist_source import missing_files
from repl_mm.demo.generator_record import SplitSummary, Summary

from conftest import run_tool

#: tiny arguments per kind
ARGS = {
    'coco': ['--num-train', '2', '--num-val', '1', '--image-size', '64'],
    'cityscapes': ['--num-train', '1', '--num-val', '1', '--image-size', '32', '64',
                   '--cities-train', 't0', '--cities-val', 'v0'],
    'fashion-mnist': ['--num-train', '20', '--num-val', '10'],
}
FIRST_LINE = re.compile(r'(?P<kind>\S+) demo data (?P<state>[^:]+): (?P<out_dir>.+)')


def make_demo_data(kind: str, out: Path) -> tuple[str, dict]:
    """Run the tool as a user would; return the state its first line reports and its summary."""
    stdout = run_tool('tools/make_demo_data.py', kind, '--out', str(out), *ARGS[kind]).stdout
    first, summary = stdout.split('\n', 1)
    line = FIRST_LINE.fullmatch(first)
    assert line, first
    summary = json.loads(summary)
    assert (line['kind'], line['out_dir']) == (kind, summary['out_dir'])
    return line['state'], summary


def stamps(root: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in root.rglob('*') if path.is_file()}


# coco in the fast suite; the other two kinds (the same tool code path) with `make test-slow`
@pytest.mark.parametrize('kind', [k if k == 'coco' else pytest.param(k, marks=pytest.mark.slow)
                                  for k in ARGS])
def test_the_tool_reports_written_then_skipped(kind, tmp_path):
    if kind == 'fashion-mnist' and missing_files(DEFAULT_FMNIST_DIR):
        pytest.skip(f'fashion-mnist copies real files (no procedural stand-in) and they are not in '
                    f'{DEFAULT_FMNIST_DIR}: apt-get install dataset-fashion-mnist')
    out = tmp_path / 'data'
    state, summary = make_demo_data(kind, out)
    assert state == 'written' and summary['written'] is True
    assert summary['out_dir'] == str(out.resolve())
    assert set(summary) == Summary.__required_keys__
    assert set(summary['splits']) == {'train', 'val'}
    for split in summary['splits'].values():
        assert set(split) == SplitSummary.__required_keys__
    files = stamps(out)

    state, again = make_demo_data(kind, out)
    assert 'skipped' in state.split(', ') and 'written' not in state
    assert again['written'] is False
    assert {k: v for k, v in again.items() if k != 'written'} == \
           {k: v for k, v in summary.items() if k != 'written'}
    assert stamps(out) == files  # nothing rewritten
