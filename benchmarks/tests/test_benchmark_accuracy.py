"""benchmarks/benchmark_accuracy.py: the report reads the per-seed result files, pairs the
variants by seed and answers its two questions (does deleting the blocks matter, how much do the
RepL kinds win back) with t-based 95% confidence intervals of the paired differences."""
import json

from conftest import run_tool

SETTING = 'resnet32-w4-long'
TOP1 = {'baseline': [90.0, 89.8, 90.2], 'removed': [88.0, 88.2, 87.8],
        'repl-fused': [89.0, 89.1, 88.9], 'repl-light': [88.1, 88.5, 87.7]}


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
    # removed - baseline per seed: -2.0, -1.6, -2.4: mean -2.00, std 0.40, and the interval
    # half-width t(0.975, 2) * 0.40 / sqrt(3) = 4.303 * 0.231 = 0.99
    assert ('| removed - baseline | 3 | -2.00 (0), -1.60 (1), -2.40 (2) | -2.00 | 0.40 | '
            '[-2.99, -1.01] |') in text
    assert ('removed loses 2.00 points against the baseline (95% CI [-2.99, -1.01], n=3: '
            'excludes zero; blocks matter here: yes)') in text
    # fused - removed: +1.0, +0.9, +1.1: std 0.10, half-width 0.25
    assert ('repl-fused recovers +1.00 points over removed, 50% of the gap (95% CI '
            '[+0.75, +1.25], n=3: excludes zero); -1.00 against the baseline') in text
    # light - removed: +0.1, +0.3, -0.1: std 0.20, half-width 0.50: the interval holds zero
    assert ('repl-light recovers +0.10 points over removed, 5% of the gap (95% CI '
            '[-0.40, +0.60], n=3: not distinguishable from zero at n=3)') in text
    assert '| repl-light - removed | 3 | +0.10 (0), +0.30 (1), -0.10 (2) | +0.10 | 0.20 | ' \
        '[-0.40, +0.60] includes 0 |' in text
    assert '| repl-light - repl-fused | 3 |' in text


def test_t_interval_holds_zero_where_two_standard_errors_did_not(tmp_path):
    """The fused - removed comparison of the measured resnet32-w4-long run (top-1 to two
    decimals): +0.41, which the old rule (difference of means over twice its unpaired standard
    error, 0.37) called beyond seed noise; paired by seed with Student's t at 2 degrees of
    freedom the interval is [-0.35, +1.17] and includes zero."""
    write_results(tmp_path, {'baseline': [89.74, 89.81, 90.15], 'removed': [88.79, 89.11, 88.99],
                             'repl-fused': [89.47, 89.59, 89.07]})
    text = report(tmp_path)
    assert ('repl-fused recovers +0.41 points over removed, 44% of the gap (95% CI '
            '[-0.35, +1.17], n=3: not distinguishable from zero at n=3)') in text
    assert '2 x standard error' not in text and 'beyond seed noise' not in text


def test_report_pairs_by_seed(tmp_path):
    """A seed missing from one variant leaves that comparison with the seeds both have."""
    write_results(tmp_path, {'baseline': [90.0, 89.8, 90.2], 'removed': [88.0, 88.2]})
    text = report(tmp_path)
    # per seed -2.0, -1.6: mean -1.80, std 0.28, t(0.975, 1) = 12.71: half-width 2.54
    assert ('| removed - baseline | 2 | -2.00 (0), -1.60 (1) | -1.80 | 0.28 | '
            '[-4.34, +0.74] includes 0 |') in text
    assert 'not distinguishable from zero at n=2; blocks matter here: not shown' in text


def test_report_with_one_seed_says_noise_is_unknown(tmp_path):
    write_results(tmp_path, {k: v[:1] for k, v in TOP1.items()})
    text = report(tmp_path)
    assert 'one seed: seed noise unknown' in text
    assert 'recovers' not in text


def test_report_says_when_deleting_wins(tmp_path):
    """A setting where removed beats the baseline and a RepL kind ends under removed: both are
    said as they are, and a loss whose interval excludes zero is called so."""
    write_results(tmp_path, {'baseline': [90.0, 89.8, 90.2], 'removed': [90.4, 90.6, 90.2],
                             'repl-light': [89.4, 89.6, 89.3]})
    text = report(tmp_path)
    assert 'removed gains 0.40 points against the baseline' in text
    assert 'blocks matter here: not shown' in text
    # light - removed per seed: -1.0, -1.0, -0.9: mean -0.97, std 0.06, half-width 0.14
    assert ('repl-light scores 0.97 points under removed (95% CI [-1.11, -0.82], n=3: excludes '
            'zero); -0.57 against the baseline') in text


def test_compare_pairs_one_variant_across_two_result_sets(tmp_path):
    write_results(tmp_path / 'old')
    write_results(tmp_path / 'new', dict(TOP1, **{'repl-light': [88.5, 88.6, 88.0]}))
    text = run_tool('benchmarks/benchmark_accuracy.py', 'compare', '--setting', SETTING,
                    '--variants', 'repl-light', '--out', str(tmp_path / 'new'), '--against',
                    str(tmp_path / 'old')).stdout
    rows = {line.split(' | ')[0]: line for line in text.splitlines() if line.startswith('| repl')}
    assert '+0.40 (0), +0.10 (1), +0.30 (2) | +0.27' in rows['| repl-light - repl-light (theirs)']
    assert '+0.50 (0), +0.40 (1), +0.20 (2) | +0.37' in rows['| repl-light - removed (theirs)']
    assert '| repl-light - baseline (theirs) | 3 |' in text
