"""Tests of repl_mm.frameworks: a missing OpenMMLab framework is skipped, and named when its part of
repl_mm is imported."""
from conftest import run_python


def test_a_missing_framework_is_skipped_and_named():
    result = run_python("import sys; sys.modules['mmseg'] = None\n"
                        "import repl_mm; print(repl_mm.REGISTERED)\n"
                        "import repl_mm.mmseg\n")
    assert result.stdout.split('\n')[0] == "['mmdet', 'mmpretrain']"
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('repl_mm.frameworks.FrameworkMissing') and 'mmsegmentation' in last
