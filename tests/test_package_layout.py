"""The package's layers and what ``import repl_mm`` and ``pip install .`` deliver.

Layers, each importing only the ones below it: the mechanism, ``repl_core`` (its own package,
plain PyTorch) <- ``repl_mm.models`` <- the framework folders (``mmdet``, ``mmseg``,
``mmpretrain``) <- ``engine``; ``analysis`` and ``demo`` on top. The benchmarks live outside the
packages.

The tests mirror the packages: ``repl_core/<module>.py`` is tested in
``tests/core/test_<module>.py``, ``repl_mm/<folder>/<module>.py`` in
``tests/<folder>/test_<module>.py`` and ``repl_mm/<module>.py`` in ``tests/test_<module>.py``;
tests of the command-line tools, the shipped configs and end-to-end runs have their own folders
(``tests/tools``, ``tests/configs``, ``tests/integration``), and what several test modules share
is in ``tests/conftest.py`` and small helper modules beside it (``toy_net``, ``mm_cases``,
``cuda_cases``).
"""
import ast
import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT, run_python

LAYER = {'frameworks': 0, 'version': 0, 'models': 1, 'mmdet': 2, 'mmseg': 2,
         'mmpretrain': 2, 'engine': 3, 'analysis': 4, 'demo': 4}


def mirrored_folders() -> dict:
    """Each package folder (one with an ``__init__.py``) and the test folder that mirrors it."""
    folders = {ROOT / 'repl_core': ROOT / 'tests' / 'core', ROOT / 'repl_mm': ROOT / 'tests'}
    for init in sorted((ROOT / 'repl_mm').rglob('__init__.py')):
        package = init.parent
        if package != ROOT / 'repl_mm':
            folders[package] = ROOT / 'tests' / package.relative_to(ROOT / 'repl_mm')
    return folders


def has_logic(path) -> bool:
    """Whether a module defines a function or a class at its top level."""
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
               for node in ast.parse(path.read_text()).body)


def test_every_module_with_logic_has_its_test_module():
    missing = [f'{(tests / f"test_{module.stem}.py").relative_to(ROOT)} (for '
               f'{module.relative_to(ROOT)})'
               for package, tests in mirrored_folders().items()
               for module in sorted(package.glob('*.py'))
               if module.stem != '__init__' and has_logic(module)
               and not (tests / f'test_{module.stem}.py').is_file()]
    assert not missing, 'modules without their test module:\n' + '\n'.join(missing)


def test_every_test_module_of_a_package_folder_is_named_after_one_of_its_modules():
    """Tests of a theme (a tool, the configs, an end-to-end run) belong in tests/tools,
    tests/configs or tests/integration, not beside the modules."""
    stray = [f'{test.relative_to(ROOT)} (no {package.relative_to(ROOT)}/{test.stem[5:]}.py)'
             for package, tests in mirrored_folders().items() if tests != ROOT / 'tests'
             for test in sorted(tests.glob('test_*.py'))
             if not (package / f'{test.stem[5:]}.py').is_file()]
    assert not stray, 'test modules named after no module:\n' + '\n'.join(stray)


def repl_mm_imports(path):
    """The ``repl_mm`` subpackages a module imports (absolute and relative)."""
    package = path.relative_to(ROOT).parts[1:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[:len(package) - node.level + 1])
            parts = base + (node.module.split('.') if node.module else [])
            names = [parts[0]] if parts else [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = node.module.split('.')[1:2] if node.module.startswith('repl_mm.') else []
        elif isinstance(node, ast.Import):
            names = [a.name.split('.')[1] for a in node.names if a.name.startswith('repl_mm.')]
        else:
            continue
        found.update(names)
    return found


def test_no_module_imports_a_higher_layer():
    wrong = []
    for path in sorted((ROOT / 'repl_mm').rglob('*.py')):
        parts = path.relative_to(ROOT / 'repl_mm').with_suffix('').parts
        if parts == ('__init__', ):
            continue  # the package's entry point imports every layer
        own = LAYER[parts[0]]
        wrong += [f'{path.relative_to(ROOT)} imports repl_mm.{name}'
                  for name in repl_mm_imports(path) if LAYER.get(name, 0) > own]
    assert not wrong


def test_repl_core_imports_no_openmmlab_module_nor_the_plugin():
    for path in (ROOT / 'repl_core').rglob('*.py'):
        tree = ast.parse(path.read_text())
        modules = {alias.name for node in ast.walk(tree)
                   if isinstance(node, ast.Import) for alias in node.names}
        modules |= {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        assert not {m for m in modules if m.split('.')[0] in (
            'mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain', 'repl_mm')}, path


def test_importing_the_mechanism_imports_no_openmmlab_package():
    """``import repl_core`` (and every module in it) loads PyTorch only: nothing of mmengine,
    mmcv, mmdet, mmseg or mmpretrain, and nothing of the plugin."""
    modules = ', '.join(repr(f'repl_core.{p.stem}') for p in (ROOT / 'repl_core').glob('*.py')
                        if p.stem != '__init__')
    result = run_python(f"import importlib, sys\n"
                        f"for name in ['repl_core', {modules}]: importlib.import_module(name)\n"
                        f"print(sorted({{m.split('.')[0] for m in sys.modules}}))\n")
    assert result.returncode == 0, result.stderr
    loaded = set(ast.literal_eval(result.stdout.strip().splitlines()[-1]))
    assert 'torch' in loaded and 'repl_core' in loaded
    openmmlab = {'mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain'}
    assert not loaded & (openmmlab | {'repl_mm'}), loaded & (openmmlab | {'repl_mm'})


def test_a_broken_module_is_not_hidden():
    """``import repl_mm`` must not catch an ImportError of ``repl_mm.engine`` and go on without
    it: the hooks would be silently missing."""
    result = run_python("import sys; sys.modules['repl_mm.engine.checkpoint_files'] = None\n"
                        "import repl_mm\n")
    assert result.returncode != 0
    assert 'repl_mm.engine.checkpoint_files' in result.stderr.strip().splitlines()[-1]


def test_the_wheel_holds_the_package_only(tmp_path):
    """``pip install .`` installs repl_mm and repl_core and nothing of benchmarks/, tests/ or
    tools/."""
    files = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    source = tmp_path / 'source'
    for name in files:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
                    '--no-build-isolation', '-w', str(tmp_path), str(source)], check=True,
                   capture_output=True, timeout=600)
    [wheel] = tmp_path.glob('repl_mm-*.whl')
    tops = {name.split('/')[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith('.dist-info')} == {'repl_mm', 'repl_core'}
