"The repository's own rules: modules come from notebooks, notebooks are clean and papermill-ready, README is true."
import ast, json, shutil, subprocess, sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def _copy_project(tmp):
    for name in ('nbs', 'quantized_llms'): shutil.copytree(REPO/name, tmp/name, ignore=shutil.ignore_patterns('__pycache__', 'corpus'))
    for name in ('settings.ini', 'setup.py', 'README.md'): shutil.copy(REPO/name, tmp/name)

def _modules(pkg: Path) -> dict:
    "{path under the package: text} of every module, sub-packages' too (`algorithms/gptq.py`)."
    return {f.relative_to(pkg).as_posix(): f.read_text() for f in sorted(pkg.rglob('*.py')) if '__pycache__' not in f.parts}

def _notebooks(nbs: Path, pattern: str = '*.ipynb') -> list:
    "The notebooks under `nbs`, in sub-folders too (`nbs/algorithms/gptq.ipynb`), not in hidden ones (checkpoints)."
    return sorted(p for p in nbs.rglob(pattern) if not any(q.startswith('.') for q in p.relative_to(nbs).parts))

def test_modules_in_sync_with_notebooks(tmp_path):
    _copy_project(tmp_path)
    for f in (tmp_path/'quantized_llms').rglob('*.py'): f.unlink()
    subprocess.run([str(BIN/'nbdev_export')], cwd=tmp_path, check=True)
    made, have = _modules(tmp_path/'quantized_llms'), _modules(REPO/'quantized_llms')
    assert sorted(made) == sorted(have), 'modules without a notebook, or notebooks not exported: run nbdev_export'
    stale = [n for n in made if made[n] != have[n]]
    assert not stale, f'{stale} differ from their notebooks: edit the notebook and run nbdev_export'

def test_notebooks_clean(tmp_path):
    _copy_project(tmp_path)
    subprocess.run([str(BIN/'nbdev_clean')], cwd=tmp_path, check=True)
    dirty = [p.relative_to(REPO/'nbs').as_posix() for p in _notebooks(REPO/'nbs')
             if p.read_text() != (tmp_path/'nbs'/p.relative_to(REPO/'nbs')).read_text()]
    assert not dirty, f'{dirty} are not clean: run nbdev_clean'

def _parameter_cells(nb):
    return [c for c in nb['cells'] if 'parameters' in c.get('metadata', {}).get('tags', [])]

def test_stage_notebooks_have_one_literal_parameters_cell():
    for p in [*_notebooks(REPO/'nbs', '[0-9]*.ipynb'), *_notebooks(REPO/'nbs'/'algorithms')]:
        cells = _parameter_cells(json.loads(p.read_text()))
        assert len(cells) == 1, f'{p.name}: {len(cells)} cells tagged parameters, want exactly 1'
        tree = ast.parse(''.join(cells[0]['source']))
        for node in tree.body:
            assert isinstance(node, ast.Assign), f'{p.name}: parameters cell may only assign'
            ast.literal_eval(node.value)  # raises unless a plain literal

def test_results_at_most_four_levels_deep():
    "A model's records: results/<model>/<file>, or a run's: results/<model>/runs/<run>/<file>; nothing deeper."
    tracked = subprocess.run(['git', 'ls-files', 'results'], cwd=REPO, capture_output=True, text=True, check=True).stdout
    deep = [f for f in tracked.splitlines() if len(Path(f).parts) > 5]     # what is committed (a run's logs/ are ignored)
    assert not deep, f'{len(deep)} files deeper than results/<model>/runs/<run>/<file>, e.g. {deep[:3]}'

def test_notebook_and_module_globs_see_sub_packages(tmp_path):
    "A notebook in nbs/<sub>/ exports to quantized_llms/<sub>/: both globs above count them."
    for p in ('nbs/05_x.ipynb', 'nbs/algorithms/07_y.ipynb', 'nbs/.ipynb_checkpoints/z.ipynb', 'pkg/a.py', 'pkg/algorithms/b.py'):
        (tmp_path/p).parent.mkdir(parents=True, exist_ok=True); (tmp_path/p).write_text('')
    nbs = [p.relative_to(tmp_path/'nbs').as_posix() for p in _notebooks(tmp_path/'nbs')]
    assert nbs == ['05_x.ipynb', 'algorithms/07_y.ipynb'], nbs
    assert list(_modules(tmp_path/'pkg')) == ['a.py', 'algorithms/b.py']

def test_readme_commands_and_ci():
    readme = (REPO/'README.md').read_text()
    assert 'make demo' in readme and 'make test' in readme
    assert 'make test' in (REPO/'.ci'/'run').read_text()

def test_docs_build(tmp_path):
    "nbdev's docs step (as in nbdev_docs / nbdev_readme, before quarto) runs every notebook's exported and import cells."
    _copy_project(tmp_path)
    code = 'from nbdev.quarto import proc_nbs; from nbdev.config import get_config; proc_nbs(get_config().nbs_path)'
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, f'docs processing failed (keep imports in cells of their own):\n{r.stderr[-3000:]}'
    assert (tmp_path/'_proc'/'05_pipeline.ipynb').is_file()

def _module_name(path: Path) -> str:
    "'core', 'algorithms.gptq': a module's name inside the package."
    return '.'.join(path.relative_to(REPO/'quantized_llms').with_suffix('').parts)

def _imports(path: Path) -> set:
    "The quantized_llms modules a module imports, at the top or inside functions ('algorithms.gptq', 'core', ...)."
    here, out = _module_name(path).split('.')[:-1], set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = '.'.join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
            elif node.module and node.module.startswith('quantized_llms.'): base = node.module.removeprefix('quantized_llms.')
            else: continue
            names = [f'{base}.{a.name}' if base else a.name for a in node.names]
            found = [n for n in names if (REPO/'quantized_llms'/(n.replace('.', '/') + '.py')).is_file()]
            out |= set(found) if found else {base}
        elif isinstance(node, ast.Import):
            out |= {a.name.removeprefix('quantized_llms.') for a in node.names if a.name.startswith('quantized_llms.')}
    return out - {'_modidx', ''}

MODULES = {_module_name(p): p for p in (REPO/'quantized_llms').rglob('*.py') if not p.name.startswith('_')}

def test_no_import_cycles():
    "Modules import downwards only: a cycle through any import, lazy ones inside functions included, fails."
    mods = {m: _imports(p) for m, p in MODULES.items()}
    assert mods['models'] and 'core' in mods['models'], mods['models']     # the scan sees imports
    assert {'core', 'algorithm', 'algorithms.gptq'} <= mods['algorithms.gptqmodel'], mods['algorithms.gptqmodel']
    state, cycles = {}, []
    def visit(m, path):
        state[m] = 'open'
        for n in sorted(mods.get(m, ())):
            if state.get(n) == 'open': cycles.append(path[path.index(n):] + [n] if n in path else path + [n])
            elif n not in state: visit(n, path + [n])
        state[m] = 'done'
    for m in sorted(mods):
        if m not in state: visit(m, [m])
    assert not cycles, f'import cycles: {[" -> ".join(c) for c in cycles]}'

STAGES = ('quantize', 'gguf', 'benchmark', 'speed', 'hub')

def test_stages_apart():
    "A stage imports no other stage; the run layer and the engine import no algorithm (the registry finds them)."
    for stage in STAGES:
        assert not (_imports(MODULES[stage]) & set(STAGES)), f'{stage} imports {_imports(MODULES[stage]) & set(STAGES)}'
    for m in ('runs', 'engine', 'algorithm', 'blocks', 'quantizers'):
        assert not {i for i in _imports(MODULES[m]) if i.startswith('algorithms.')}, (m, _imports(MODULES[m]))
