"""No copied code outside tests and configs: nothing in ``repl_core/``, ``repl_mm/``, ``tools/``
or ``benchmarks/`` repeats a run of 6 or more lines found elsewhere in that code.

What counts as copied: 6 or more consecutive normalised lines that stand again, in the same order,
in another place (the same file or another one). Normalising strips each line, folds its white
space and passes over what carries no logic, so that it neither counts towards the 6 nor breaks a
run: blank lines; comments, whole-line and trailing; import statements, every line of them
(parenthesised or continued); docstrings and other bare string statements (prose: the same wording
of an argument in two docstrings is not the same logic twice); lines of lone punctuation or a bare
keyword (``)``, ``]``, ``},``, ``):``, ``else:``, ``try:``, ``pass``, ``return``). What remains is
compared to the letter: a function copied under a new name, re-indented or with comments added is
found; one rewritten with other variable names is not.

Not checked: ``tests/`` and ``benchmarks/tests/`` (a test spells out its own set-up so that it
reads alone), ``configs/`` and ``benchmarks/configs/`` (OpenMMLab configs are flat data, written out
in full per config), ``benchmarks/results/`` (the stored configs of past runs: records the tools
wrote, never edited). Any folder named ``tests`` or ``configs`` below the checked ones is left out
likewise.

The finder below is test tooling, not part of the package.
"""
import ast
import io
import re
import subprocess
import tokenize
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, NamedTuple, Tuple

import pytest

from conftest import ROOT

MIN_LINES = 6
CHECKED = ('repl_core', 'repl_mm', 'tools', 'benchmarks')
EXCLUDED_DIRS = {'tests', 'configs'}  # at any depth
EXCLUDED_PREFIXES = ('benchmarks/results/',)
# a line with nothing but brackets and separators, or a bare keyword
THIN = re.compile(r'[()\[\]{},:;.\s]+|(?:else|try|finally|except|pass|continue|break|return):?')


def is_excluded(path: str) -> bool:
    """Whether a repo-relative ``path`` is left out (tests, configs, stored results)."""
    return (path.startswith(EXCLUDED_PREFIXES)
            or any(part in EXCLUDED_DIRS for part in path.split('/')[:-1]))


def python_files(root: Path) -> List[str]:
    """The checked ``.py`` files below ``root``, repo-relative: what git tracks and the untracked
    files it does not ignore (outside a git checkout, e.g. an unpacked sdist: every file)."""
    try:
        listed = subprocess.run(
            ['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard', '--',
             *CHECKED], cwd=root, capture_output=True, text=True, check=True).stdout.split('\0')
    except (OSError, subprocess.CalledProcessError):
        listed = [p.relative_to(root).as_posix() for d in CHECKED for p in (root / d).rglob('*')]
    return sorted({p for p in listed
                   if p.endswith('.py') and not is_excluded(p) and (root / p).is_file()})


def code_lines(source: str) -> List[Tuple[int, str]]:
    """``(line number, normalised text)`` of each line of ``source`` that counts (see above)."""
    passed_over = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            passed_over.update(range(node.lineno, node.end_lineno + 1))
    comment_at = {tok.start[0]: tok.start[1]
                  for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                  if tok.type == tokenize.COMMENT}
    lines = []
    for number, line in enumerate(source.split('\n'), 1):
        if number in passed_over:
            continue
        text = ' '.join(line[:comment_at.get(number, len(line))].split())
        if text and not THIN.fullmatch(text):
            lines.append((number, text))
    return lines


class Copy(NamedTuple):
    """A maximal run of ``lines`` normalised lines standing in two places."""
    a: str
    a_lines: Tuple[int, int]
    b: str
    b_lines: Tuple[int, int]
    lines: int
    first: str

    def __str__(self) -> str:
        return (f'{self.a}:{self.a_lines[0]}-{self.a_lines[1]} ~ '
                f'{self.b}:{self.b_lines[0]}-{self.b_lines[1]} '
                f'({self.lines} lines, from: {self.first})')


def find_copies(sources: Dict[str, str], min_lines: int = MIN_LINES) -> List[Copy]:
    """Every maximal run of ``min_lines`` or more normalised lines that stands in two places of
    ``sources`` (name -> text), longest first. Each window of ``min_lines`` lines is keyed by its
    lines' ids; two places sharing a window start a run unless the lines before them match too
    (then it was found from an earlier window), and the run is extended while the lines agree."""
    ids: Dict[str, int] = {}
    files = {}  # name -> (line numbers, line ids, texts)
    for name, source in sorted(sources.items()):
        numbered = code_lines(source)
        files[name] = ([n for n, _ in numbered], [ids.setdefault(t, len(ids)) for _, t in numbered],
                       [t for _, t in numbered])
    windows = defaultdict(list)
    for name, (_, seq, _) in files.items():
        for i in range(len(seq) - min_lines + 1):
            windows[tuple(seq[i:i + min_lines])].append((name, i))
    copies = []
    for places in windows.values():
        for x, (a, i) in enumerate(places):
            for b, j in places[x + 1:]:
                (a_numbers, a_seq, a_texts), (b_numbers, b_seq, _) = files[a], files[b]
                if i > 0 and j > 0 and a_seq[i - 1] == b_seq[j - 1]:
                    continue  # inside a longer run, found from its start
                n = min_lines
                while i + n < len(a_seq) and j + n < len(b_seq) and a_seq[i + n] == b_seq[j + n]:
                    n += 1
                copies.append(Copy(a, (a_numbers[i], a_numbers[i + n - 1]),
                                   b, (b_numbers[j], b_numbers[j + n - 1]), n, a_texts[i]))
    return sorted(copies, key=lambda c: (-c.lines, c.a, c.a_lines, c.b, c.b_lines))


def read_sources(root: Path) -> Dict[str, str]:
    return {name: (root / name).read_text(encoding='utf-8') for name in python_files(root)}


def test_no_copied_code():
    sources = read_sources(ROOT)
    assert 'repl_core/replace.py' in sources and 'tools/train.py' in sources
    assert 'benchmarks/benchmark.py' in sources and not any(
        name.startswith(('benchmarks/configs/', 'benchmarks/results/', 'benchmarks/tests/'))
        for name in sources)
    copies = find_copies(sources)
    if copies:
        pytest.fail(f'copied code ({MIN_LINES}+ identical lines in two places; let one function '
                    'serve both):\n' + '\n'.join(map(str, copies)), pytrace=False)


FUNCTION = '''
def summarise(records, keys):
    totals = {key: 0.0 for key in keys}
    for record in records:
        for key in keys:
            totals[key] += float(record.get(key, 0.0))
    count = max(len(records), 1)
    means = {key: value / count for key, value in totals.items()}
    print(', '.join(f'{key}: {value:.3f}' for key, value in means.items()))
    return means
'''


def write_tree(root: Path, copy: str) -> None:
    """repl_mm/stats.py holds FUNCTION, tools/report.py ``copy``; the excluded folders hold copies
    of FUNCTION that must not count."""
    for name, text in {'repl_mm/stats.py': 'import json\n' + FUNCTION,
                       'tools/report.py': '"""Report."""\nimport os\n\nX = 1\n' + copy,
                       'tests/test_stats.py': FUNCTION, 'benchmarks/configs/c.py': FUNCTION,
                       'benchmarks/results/run/configs/plain.py': FUNCTION}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_finds_a_copied_function(tmp_path):
    # renamed, re-indented as a method, a comment line and a trailing comment added
    copy = 'class Report:\n' + ''.join(f'    {line}\n' for line in FUNCTION.split('\n')).replace(
        'def summarise(records, keys):', 'def mean_of(self, records, keys):  # per key').replace(
        '        count = max(', '        # guard the empty list\n        count = max(')
    write_tree(tmp_path, copy)
    assert python_files(tmp_path) == ['repl_mm/stats.py', 'tools/report.py']
    copies = find_copies(read_sources(tmp_path))
    assert [str(c) for c in copies] == [
        'repl_mm/stats.py:4-11 ~ tools/report.py:8-16 (8 lines, from: '
        'totals = {key: 0.0 for key in keys})']


def test_one_changed_line_in_the_middle_is_not_a_copy(tmp_path):
    copy = FUNCTION.replace('def summarise(', 'def mean_of(').replace(
        'count = max(len(records), 1)', 'count = len(records) or 1')
    write_tree(tmp_path, copy)
    sources = read_sources(tmp_path)
    assert find_copies(sources) == []
    assert max(c.lines for c in find_copies(sources, min_lines=3)) == 4
