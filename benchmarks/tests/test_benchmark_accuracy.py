"""benchmarks/benchmark_accuracy.py: the report reads the per-seed result files and answers its
two questions (does deleting the blocks matter, how much do the RepL kinds win back)."""
import json

from conftest import run_tool

SETTING = 'resnet32-w4-long'
TOP1 = {'baseline': [90.0, 89.8, 90.2], 'removed': [88.0, 88.2, 87.8],
        'repl-fused': [89.0, 89.1, 88.9], 'repl-light': [88.1, 88.3, 87.9]}


def write_results(out, top1=TOP1):
    for variant, values in top1.items():
        for seed, value in enumerate(values):
            folder = out / SETTING / variant / f'seed{seed}'
            folder.mkdir(parents=True)
            (folder / 'result.json').write_text(json.dumps(dict(
                metrics={'accuracy/top1': value}, params_trainable=1000, s_per_iter=0.1,
                peak_memory_mb=900, wall_s=60, seed=seed, device='cpu, 1 threads', jobs=2)))


def report(out) -> str:
    return run_tool('benchmarks/benchmark_accuracy.py', 'report', '--out', str(out)).stdout


def test_report_answers_the_recovery_questions(tmp_path):
    write_results(tmp_path)
    text = report(tmp_path)
    assert f'### {SETTING} ' in text and 'Ran on: cpu, 1 threads, 2 run(s) at a time.' in text
    assert '| baseline | 3 | 90.00 (0), 89.80 (1), 90.20 (2) | 90.00 | 0.20 |' in text
    # gap 2.00 > 2 std of the baseline (0.40)
    assert ('removed loses 2.00 points against the baseline; two baseline seed standard '
            'deviations are 0.40 (blocks matter here: yes)') in text
    # fused: +1.00 of 2.00, standard error sqrt(0.1^2/3 + 0.2^2/3) = 0.129
    assert 'repl-fused recovers +1.00 points over removed, 50% of the gap (beyond seed noise: ' \
        '2 x standard error 0.26)' in text
    assert 'repl-light recovers +0.10 points over removed, 5% of the gap (within seed noise' \
        in text


def test_report_with_one_seed_says_noise_is_unknown(tmp_path):
    write_results(tmp_path, {k: v[:1] for k, v in TOP1.items()})
    text = report(tmp_path)
    assert 'one baseline seed: seed noise unknown' in text
    assert 'recovers' not in text


def test_report_says_when_deleting_wins(tmp_path):
    """A setting where removed beats the baseline and a RepL kind ends under removed: both are
    said as they are, and a loss beyond seed noise is called so."""
    write_results(tmp_path, {'baseline': [90.0, 89.8, 90.2], 'removed': [90.4, 90.6, 90.2],
                             'repl-light': [89.4, 89.6, 89.2]})
    text = report(tmp_path)
    assert 'removed gains 0.40 points against the baseline' in text
    assert '(blocks matter here: no)' in text
    # light - removed = -1.00, standard error sqrt(0.2^2/3 + 0.2^2/3) = 0.163
    assert 'repl-light scores 1.00 points under removed (beyond seed noise: 2 x standard ' \
        'error 0.33); -0.60 against the baseline.' in text
