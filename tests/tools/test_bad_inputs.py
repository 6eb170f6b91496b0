"""Every tool over a table of bad inputs: one message naming the problem and the fix, exit code 2,
no traceback. The tools run in this process (``conftest.run_tool_here``: an exception a tool does
not turn into a message fails the test, as a traceback would greet the user); a few cases also
run as a user runs them, in a subprocess."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import repl_mm  # noqa: F401
from repl_mm.models import plain_model_cfg

from conftest import run_tool_here
from reliability_configs.common import TINY, data_options, make_tiny_classification_data, run

pytestmark = pytest.mark.usefixtures('one_thread')


def _state_dict(model_cfg, **backbone) -> dict:
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg['backbone'].update(backbone)
    return MODELS.build(model_cfg).state_dict()


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """The bad (and some good) inputs, written once."""
    root = tmp_path_factory.mktemp('bad_inputs')
    model = Config.fromfile(TINY).model
    checkpoints = {
        'plain': _state_dict(plain_model_cfg(model)),
        'repl': _state_dict(model),
        'other_plan': _state_dict(model, repl=dict(blocks={'layer1': [1]})),
        'deeper': _state_dict(plain_model_cfg(model), depth=32),
    }
    for name, state in checkpoints.items():
        torch.save({'state_dict': state}, root / f'{name}.pth')
    (root / 'empty.pth').write_bytes(b'')
    whole = (root / 'repl.pth').read_bytes()
    (root / 'cut.pth').write_bytes(whole[:len(whole) // 2])
    (root / 'text.pth').write_text('not a checkpoint\n')
    torch.save(torch.zeros(3), root / 'tensor.pth')
    torch.save({'conv.weight': torch.zeros(3)}, root / 'unrelated.pth')
    (root / 'broken.py').write_text("model = dict(type='ImageClassifier'\n")
    (root / 'no_model.py').write_text(f"_base_ = '{TINY}'\nmodel = None\n")
    (root / 'unknown_type.py').write_text(
        f"_base_ = '{TINY}'\nmodel = dict(backbone=dict(type='NoSuchBackbone'))\n")
    (root / 'plain_cfg.py').write_text(
        f"_base_ = '{TINY}'\nmodel = dict(backbone=dict(type='CIFARResNet', _delete_=True, "
        f"depth=20))\n")
    make_tiny_classification_data(root / 'data')
    return root


CONFIG_READERS = {  # tool: arguments after the config
    'tools/train.py': [],
    'tools/test.py': ['{root}/repl.pth'],
    'tools/fold.py': ['{root}/repl.pth', '{root}/out'],
    'tools/convert.py': ['{root}/plain.pth', '{root}/out'],
    'tools/crash_resume_check.py': ['--checkpoint', 'iter_4.pth', '--work-dir', '{root}/crash'],
    'tools/analysis/compare_params.py': [],
    'tools/analysis/cost_report.py': [],
}
CHECKPOINT_READERS = {  # tool: how it is given a checkpoint
    'tools/test.py': ['{tiny}', '{checkpoint}'],
    'tools/fold.py': ['{tiny}', '{checkpoint}', '{root}/out'],
    'tools/convert.py': ['{tiny}', '{checkpoint}', '{root}/out'],
    'tools/train.py': ['{tiny}', '--resume', '{checkpoint}'],
}
BAD_CHECKPOINTS = {  # file: what the message must say
    'missing.pth': ['{root}/missing.pth', 'no such file'],
    'out': ['is a directory'],
    'empty.pth': ['cannot be read', 'the file is empty', 'resume from an earlier one'],
    'cut.pth': ['cannot be read: it is truncated', 'resume from an earlier one'],
    'text.pth': ['is not a PyTorch checkpoint', 'give the .pth file a training wrote'],
    'tensor.pth': ['holds no state dict'],
}


def _cases():
    for tool, rest in CONFIG_READERS.items():
        yield pytest.param(tool, ['{root}/missing.py', *rest],
                           ['config {root}/missing.py: no such file'], id=f'{tool}-missing-cfg')
    for tool in ('tools/train.py', 'tools/fold.py'):
        yield pytest.param(tool, ['{root}/broken.py', *CONFIG_READERS[tool]],
                           ['config {root}/broken.py is not valid Python'],
                           id=f'{tool}-broken-cfg')
    for tool, args in CHECKPOINT_READERS.items():
        for name, phrases in BAD_CHECKPOINTS.items():
            if tool == 'tools/train.py' and name == 'tensor.pth':
                phrases = ['not a checkpoint a training wrote', 'load_from=']
            yield pytest.param(tool, [a.replace('{checkpoint}', f'{{root}}/{name}')
                                      for a in args], phrases, id=f'{tool}-{name}')
    # configs whose model cannot be built
    for tool in ('tools/fold.py', 'tools/convert.py', 'tools/test.py', 'tools/train.py',
                 'tools/analysis/compare_params.py'):
        for config in ('no_model', 'unknown_type'):
            rest = [a.replace('{checkpoint}', '{root}/repl.pth') for a in
                    CHECKPOINT_READERS.get(tool, ['{tiny}'])[1:] if a != '--resume']
            phrases = [f'The model of {{root}}/{config}.py cannot be built',
                       'NoSuchBackbone is not in the' if config == 'unknown_type' else 'None']
            if tool in ('tools/fold.py', 'tools/convert.py',
                        'tools/analysis/compare_params.py') and config == 'unknown_type':
                phrases = ["has no RepL backbone (backbone type 'NoSuchBackbone')"]
            yield pytest.param(tool, [f'{{root}}/{config}.py',
                                      *([] if tool == 'tools/train.py' else rest)],
                               phrases, id=f'{tool}-{config}')
    yield pytest.param('tools/convert.py', ['{root}/plain_cfg.py', '{root}/plain.pth',
                                            '{root}/out'],
                       ["has no RepL backbone (backbone type 'CIFARResNet')", 'a RepL config'],
                       id='convert-plain-config')
    # checkpoints of another network or kind
    yield pytest.param('tools/convert.py', ['{tiny}', '{root}/repl.pth', '{root}/out'],
                       ['is a RepL checkpoint (trained coefficients for backbone.layer1.1',
                        'would throw those coefficients away', 'tools/fold.py'],
                       id='convert-a-repl-checkpoint')
    yield pytest.param('tools/convert.py', ['{tiny}', '{root}/deeper.pth', '{root}/out'],
                       ['tensors of blocks it does not have', 'another depth'],
                       id='convert-another-depth')
    yield pytest.param('tools/convert.py', ['{tiny}', '{root}/unrelated.pth', '{root}/out'],
                       ['holds none of the backbone'], id='convert-another-network')
    yield pytest.param('tools/fold.py', ['{tiny}', '{root}/plain.pth', '{root}/out'],
                       ['holds no RepL coefficients', 'nothing to fold'], id='fold-a-plain')
    for tool in ('tools/fold.py', 'tools/test.py'):
        yield pytest.param(tool, ['{tiny}', '{root}/other_plan.pth', '{root}/out'][:3 if 'fold'
                                                                                  in tool else 2],
                           ['another RepL replacement plan', "Set the backbone's repl.blocks"],
                           id=f'{tool}-another-plan')
    yield pytest.param('tools/test.py', ['{tiny}', '{root}/deeper.pth'],
                       ['does not fit the model built from this config'],
                       id='test-another-depth')
    yield pytest.param('tools/train.py', ['{tiny}', '--resume', '{root}/repl.pth'],
                       ['not a checkpoint a training wrote', 'load_from='],
                       id='train-resume-weights-only')
    yield pytest.param('tools/analysis/plot_logs.py', ['{root}/nowhere', '--out', '{root}/p.png'],
                       ['{root}/nowhere: no JSON log'], id='plot-logs-no-run')


@pytest.mark.parametrize('tool, argv, phrases', list(_cases()))
def test_a_bad_input_gets_one_clear_message(files, tool, argv, phrases):
    (files / 'out').mkdir(exist_ok=True)
    values = dict(root=str(files), tiny=TINY)
    argv = [a.format(**values) for a in argv]
    if tool in ('tools/train.py', 'tools/test.py', 'tools/convert.py') and (
            argv[0] == TINY or argv[0].endswith(('no_model.py', 'unknown_type.py'))):
        argv += ['--cfg-options', *data_options(files / 'data'),
                 f'test_dataloader.dataset.data_root={files / "data"}']
    code, _, stderr = run_tool_here(tool, *argv)
    assert code == 2, stderr[-3000:]
    assert stderr.startswith('error: ') and 'Traceback' not in stderr
    for phrase in phrases:
        assert phrase.format(**values) in stderr, stderr[-3000:]


@pytest.mark.parametrize('tool, argv, phrase', [
    ('tools/fold.py', ['{root}/missing.py', '{root}/repl.pth', '{root}/out'], 'no such file'),
    ('tools/convert.py', ['{tiny}', '{root}/cut.pth', '{root}/out'], 'it is truncated'),
])
def test_as_a_user_runs_them(files, tool, argv, phrase):
    result = run(tool, *[a.format(root=files, tiny=TINY) for a in argv], check=False)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert phrase in result.stderr, result.stderr[-3000:]
