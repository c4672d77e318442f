"README.md is nbs/index.ipynb rendered as nbdev_readme renders it (`make readme`), short, with links that resolve."
import ast, re, sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO/'tools'))
from readme import render_readme

README = (REPO/'README.md').read_text(encoding='utf-8')

def test_readme_is_the_index_notebook_rendered():
    assert README == render_readme(), 'README.md is not nbs/index.ipynb rendered: edit the notebook, then run `make readme`'

def test_readme_is_short():
    n = len(README.splitlines())
    assert n <= 200, f'README.md has {n} lines: keep it to 200 (details belong in the notebooks)'

def test_readme_names_the_two_commands():
    assert 'make demo' in README and 'make test' in README

def test_relative_links_resolve():
    links = re.findall(r'\]\(([^)\s]+)\)', README)
    local = [l.split('#')[0] for l in links if not re.match(r'[a-z]+:', l) and not l.startswith('#')]
    assert local, 'the scan sees links'
    assert [l for l in local if not (REPO/l).exists()] == []

def test_python_examples_name_what_the_package_exports():
    "Every `from quantized_llms.X import Y` in the README's Python blocks names a symbol of the exported modules."
    from quantized_llms._modidx import d
    syms = d['syms']
    blocks = re.findall(r'```python\n(.*?)```', README, re.S)
    names = [(n.module, a.name) for b in blocks for n in ast.walk(ast.parse(b))
             if isinstance(n, ast.ImportFrom) and (n.module or '').startswith('quantized_llms.') for a in n.names]
    assert names, 'the scan sees imports'
    assert [f'{m}.{a}' for m, a in names if f'{m}.{a}' not in syms.get(m, {})] == []
