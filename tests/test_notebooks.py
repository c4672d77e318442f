"Each notebook is a lesson whose cells assert: run every one of them, as `nbdev_test` does."
import os, subprocess, sys, tempfile
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (REPO/'nbs').rglob('*.ipynb') if not p.name.startswith('_') and '.ipynb_checkpoints' not in p.parts)

def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5, NOTEBOOKS

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[str(p.relative_to(REPO/'nbs').with_suffix('')) for p in NOTEBOOKS])
def test_notebook_runs(nb):
    nbdev_test = Path(sys.executable).parent/'nbdev_test'
    # the notebooks' scratch folders (tiny models, GGUF files) go under one folder removed after the notebook: a run
    # of the suite leaves nothing behind in /tmp
    with tempfile.TemporaryDirectory(prefix=f'nbtest-{nb.stem}-') as scratch:
        r = subprocess.run([str(nbdev_test), '--path', str(nb), '--do_print'], cwd=REPO, capture_output=True, text=True,
                           env={**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TMPDIR': scratch}, timeout=900)
    assert r.returncode == 0, f'{nb.name} failed:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}'
