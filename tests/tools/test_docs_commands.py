"""Every command that README.md and docs/*.md show is one the tools accept as written.

Each ``python tools/...`` / ``python benchmarks/...`` command of the docs (code blocks and inline
code) is parsed by its script's own argument parser, in this process, and the repository files
it names (configs) must exist; ``make`` targets must exist. Usage lines with placeholders
(``CONFIG``, ``CKPT``, ...) are checked for their options only. What the main commands then do
is tested end to end elsewhere (tools/train.py, test.py, fold.py, make_demo_data.py, the
analysis tools, the benchmarks).
"""
import argparse
import contextlib
import io
import re
import runpy
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

DOCS = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
SCRIPT = re.compile(r'^(?:\w+=\S+ )*(?:python |)((?:tools|benchmarks)/[\w/]+\.(?:py|sh))(.*)$')
PLACEHOLDER = re.compile(r'\b[A-Z][A-Z_]{2,}\b|\.\.\.|\[|\|')


def doc_commands():
    """``(doc, kind, line)`` of every tool command in the docs: ``'command'`` for the lines of
    code blocks (continuation lines joined), ``'mention'`` for inline code, which may be a
    fragment or a usage line."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for block in re.findall(r'```(?:bash|sh)?\n(.*?)```', text, flags=re.S):
            for line in block.replace('\\\n', ' ').splitlines():
                found.append((doc.name, 'command', line.split(' # ')[0].split('  #')[0].strip()))
        found += [(doc.name, 'mention', span) for span in re.findall(r'`([^`\n]+)`', text)]
    return [(doc, kind, ' '.join(line.split())) for doc, kind, line in found
            if SCRIPT.match(line) or line.startswith('make ')]


COMMANDS = sorted(set(doc_commands()))


class _Parsed(Exception):
    pass


def parse_as_the_script_does(script: str, argv: list) -> None:
    """Run ``script`` with ``argv`` until its parser has parsed them (then stop)."""
    real = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        real(self, args, namespace)
        raise _Parsed

    argparse.ArgumentParser.parse_args = parse_and_stop
    old_argv, sys.argv = sys.argv, [script, *argv]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            runpy.run_path(str(ROOT / script), run_name='__main__')
    except _Parsed:
        return
    except SystemExit as exit:
        if exit.code == 0:  # --help
            raise
        raise AssertionError(f'{script} {argv}: exit {exit.code}: {err.getvalue()}') from None
    finally:
        argparse.ArgumentParser.parse_args = real
        sys.argv = old_argv
    raise AssertionError(f'{script} parsed no arguments')


def test_the_docs_show_commands():
    assert len(COMMANDS) > 30


@pytest.mark.parametrize('doc, kind, command', COMMANDS, ids=[c for _, _, c in COMMANDS])
def test_documented_command_is_accepted(doc, kind, command):
    if command.startswith('make '):
        target = command.split()[1]
        result = subprocess.run(['make', '-n', '-C', str(ROOT), target], capture_output=True,
                                text=True)
        assert result.returncode == 0, f'{doc}: {command}: {result.stderr}'
        return
    script, rest = SCRIPT.match(command).groups()
    assert (ROOT / script).is_file(), f'{doc}: {script} does not exist'
    if script.endswith('.sh') or not rest.strip():
        return  # a script named in prose
    if kind == 'mention' or PLACEHOLDER.search(rest):  # its options must exist
        options = re.findall(r'--[\w-]+', rest)
        help_text = io.StringIO()
        with contextlib.redirect_stdout(help_text):
            with pytest.raises(SystemExit):
                parse_as_the_script_does(script, ['--help'])
        missing = [o for o in options if o not in help_text.getvalue()]
        assert not missing, f'{doc}: {script} has no option {missing}'
        return
    argv = shlex.split(rest)
    for arg in argv:
        if arg.endswith('.py') and arg.startswith(('configs/', 'benchmarks/configs/')):
            assert (ROOT / arg).is_file(), f'{doc}: {command}: {arg} does not exist'
    parse_as_the_script_does(script, argv)
