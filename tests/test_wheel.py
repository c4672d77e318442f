"""The pip-installed module stands alone: a wheel built from this repository, installed in a fresh virtual environment
outside the clone, runs a built-in configuration by name (`quantized-llms run smollm2-135m`) and a batch (papermill
over the stage notebook shipped in the wheel). The new environment borrows the already-installed dependencies through
a `.pth` file, so the test installs nothing from the network and does not see the clone."""
import json, os, shutil, subprocess, sys, sysconfig, venv
from pathlib import Path
import pytest

REPO = Path(__file__).parents[1]
SKIP = ('.git', '.venv', '.whl', 'outputs', 'results', 'build', 'dist', '_docs', '_proc', '__pycache__', '*.egg-info',
        '.pytest_cache', 'logs')

@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    "(python, console script, work dir) of a fresh venv holding only the wheel, dependencies borrowed read-only."
    tmp = tmp_path_factory.mktemp('wheel')
    src = tmp/'src'
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*SKIP))      # build from a copy: the clone stays clean
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp/'dist'), str(src)],
                   check=True, capture_output=True)
    wheel = next((tmp/'dist').glob('quantized_llms-*.whl'))
    env_dir = tmp/'venv'
    venv.create(env_dir, with_pip=True)      # its own pip (bundled, offline): installing there leaves this environment alone
    py = env_dir/'bin'/'python'
    site = subprocess.run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([py, '-m', 'pip', 'install', '--no-deps', '--no-index', '-q', str(wheel)], check=True, capture_output=True)
    Path(site, 'borrowed_dependencies.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')   # after: pip saw nothing installed
    cli = env_dir/'bin'/'quantized-llms'
    assert cli.read_text().startswith(f'#!{py}')
    work = tmp/'work'; work.mkdir()
    return py, cli, work

def _env():
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    return {**env, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'}

def test_wheel_holds_configs_and_notebooks(installed):
    py, _, work = installed
    out = subprocess.run([py, '-c', 'import quantized_llms, json; from quantized_llms.core import builtin_configs; '
                          'from quantized_llms.batch import pipeline_notebook; '
                          'print(json.dumps([quantized_llms.__file__, sorted(builtin_configs()), str(pipeline_notebook()), '
                          'sorted(builtin_configs("configs/profiles"))]))'],
                         cwd=work, env=_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    where, names, nb, profiles = json.loads(out.stdout.strip().splitlines()[-1])
    assert str(REPO) not in where and 'venv' in where            # the installed copy, not the clone
    assert {'smollm2-135m', 'smollm2-135m-awq', 'starcoderbase-1b'} <= set(names) and 't4' in profiles
    assert str(REPO) not in nb and nb.endswith('quantized_llms/nbs/05_pipeline.ipynb')

def test_run_and_batch_from_the_wheel(installed):
    _, cli, work = installed
    small = ['--stages', 'baseline', '--set', 'eval.max_windows=1']
    r = subprocess.run([cli, 'run', 'smollm2-135m', *small, '--set', 'eval.seq_len=256'], cwd=work, env=_env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((work/'results'/'SmolLM2-135M-Instruct'/'baseline.json').read_text())
    assert rec['perplexity']['n_windows'] == 1 and rec['perplexity']['seq_len'] == 256
    r = subprocess.run([cli, 'run', 'smollm2-135', *small], cwd=work, env=_env(), capture_output=True, text=True)
    assert r.returncode == 2 and "did you mean 'smollm2-135m'?" in r.stderr
    b = subprocess.run([cli, 'batch', 'smollm2-135m', *small, '--sweep', 'eval.seq_len=128'], cwd=work, env=_env(),
                       capture_output=True, text=True, timeout=900)
    assert b.returncode == 0, (b.stdout[-2000:], b.stderr[-3000:])
    for n in (128,):
        rec = json.loads((work/'results'/'SmolLM2-135M-Instruct'/'runs'/f'seq_len-{n}'/'baseline.json').read_text())
        assert rec['perplexity']['seq_len'] == n
