"""tools/fold.py: a RepL checkpoint folded into a stock checkpoint and config that load without
repl-mm; the light kind refused."""
import subprocess
import sys
import textwrap

import torch
from mmengine.config import Config

import repl_mm  # noqa: F401
from repl_mm.analysis.cost_report import build_model
from repl_mm.analysis.synthetic import synthetic_runner
from repl_mm.engine import trusted_checkpoint_globals

from conftest import run_tool, write_config


PLAIN_LOAD = textwrap.dedent('''
    import sys
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint
    config, weights, inputs, outputs = sys.argv[1:]
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model).eval()
    load_checkpoint(model, weights, map_location='cpu', strict=True)
    with torch.no_grad():
        torch.save(model(torch.load(inputs), mode='tensor'), outputs)
    assert not [m for m in sys.modules if m.startswith('repl_mm')], 'repl_mm was imported'
    print(type(model.backbone).__module__)
''')


def test_fold_gives_a_stock_checkpoint_and_config(tmp_path):
    # ResNet-18 (CIFAR stem, 16 base channels) with the last block of layer1 and layer3 replaced,
    # per-channel coefficients: each takes its successor from the next stage through an adapter
    config = write_config(tmp_path / 'repl_r18.py', 'RepLResNet_CIFAR', depth=18, channels=128,
                          extra=", base_channels=16, stem_channels=16, repl=dict(blocks="
                                "{'layer1': [1], 'layer3': [1]}, granularity='channel')")
    cfg = Config.fromfile(str(config))
    synthetic_runner(cfg, str(tmp_path / 'work'), max_iters=2, custom_hooks=cfg.custom_hooks,
                     checkpoint=True).train()
    checkpoint = tmp_path / 'work' / 'iter_2.pth'
    out = tmp_path / 'folded'
    result = run_tool('tools/fold.py', str(config), str(checkpoint), str(out))
    assert 'folded 2 blocks (backbone.layer1.1, backbone.layer3.1)' in result.stdout

    folded = torch.load(out / 'repl_r18_folded.pth', weights_only=True)  # no allow-list
    assert set(folded) == {'state_dict', 'meta'}
    assert folded['meta']['repl_folded']['plan']['layer1'] == [1]
    assert not any('repl' in key for key in folded['state_dict'])
    plain_text = (out / 'repl_r18_folded.py').read_text()
    assert "type='ResNet_CIFAR'" in plain_text
    assert 'repl' not in plain_text.replace('repl_r18', '')  # no repl, import, hook or key

    model = build_model(cfg).eval()
    with trusted_checkpoint_globals():
        model.load_state_dict(torch.load(checkpoint, map_location='cpu')['state_dict'])
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.save(inputs, tmp_path / 'inputs.pth')
    with torch.no_grad():
        expected = model(inputs, mode='tensor')
    loaded = subprocess.run(
        [sys.executable, '-c', PLAIN_LOAD, str(out / 'repl_r18_folded.py'),
         str(out / 'repl_r18_folded.pth'), str(tmp_path / 'inputs.pth'),
         str(tmp_path / 'outputs.pth')], cwd=tmp_path, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split()[-1].startswith('mmpretrain.')
    actual = torch.load(tmp_path / 'outputs.pth')
    assert torch.allclose(actual, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(actual, torch.zeros_like(actual))


def test_fold_refuses_the_light_kind(tmp_path):
    config = write_config(tmp_path / 'light.py', 'RepLCIFARResNet',
                          extra=", repl=dict(kind='light')")
    result = run_tool('tools/fold.py', str(config), str(tmp_path / 'any.pth'),
                      str(tmp_path / 'out'), check=False)
    assert result.returncode == 2
    assert "repl.kind='light'" in result.stderr and 'still needs repl-mm' in result.stderr
    assert not (tmp_path / 'out').exists()
