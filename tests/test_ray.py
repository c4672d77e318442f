"""Sweeps over a Ray cluster: `quantized-llms batch ... --ray` places one run per GPU (per CPU here, on a local
cluster of 2 CPUs), a failed run is submitted again without losing the finished ones, and the results are gathered
into the same summary as a batch run one after another, each run's records in its own `runs/<run>/` folder."""
import json
from pathlib import Path
import nbformat
import pytest
import yaml

ray = pytest.importorskip('ray')

FLAKY = '''from pathlib import Path
marker = Path('attempted')
first = not marker.exists(); marker.touch()
assert not first, 'the first attempt of every run fails'
'''
RUN = '''from quantized_llms.core import RunConfig
from quantized_llms.pipeline import run
cfg = RunConfig.from_yaml(config_path); cfg.save.results_dir = results_dir
run(cfg)
'''

def _notebook(path: Path, flaky: bool) -> Path:
    "A stand-in for the pipeline notebook: the same parameters, a run of the pipeline, and (flaky) a first attempt that fails."
    params = nbformat.v4.new_code_cell('config_path = None\nresults_dir = None\nrun_examples = False', metadata={'tags': ['parameters']})
    cells = [params] + ([nbformat.v4.new_code_cell(FLAKY)] if flaky else []) + [nbformat.v4.new_code_cell(RUN)]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}})
    nbformat.write(nb, str(path)); return path

@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from quantized_llms.core import RunConfig
    from quantized_llms.models import tiny_model, save_checkpoint, load_tokenizer
    work = tmp_path_factory.mktemp('ray')
    save_checkpoint(tiny_model('gpt_bigcode'), load_tokenizer('smollm2-135m'), work/'tiny')
    cfg = RunConfig.from_dict(dict(stages=['baseline'], model=dict(name=str(work/'tiny')), eval=dict(seq_len=64, max_windows=1),
                                   save=dict(output_dir=str(work/'outputs'), results_dir=str(work/'results'))))
    return work, cfg

def _baselines(runs_dir):
    return {p.parent.name: json.loads(p.read_text())['perplexity']['seq_len'] for p in Path(runs_dir).glob('*/baseline.json')}

def test_ray_sweep_retries_failed_runs(setup):
    from quantized_llms.batch import run_batch
    work, cfg = setup
    nb = _notebook(work/'flaky.ipynb', flaky=True)
    s = run_batch(cfg, {'eval.seq_len': [32, 64]}, work/'runs-ray', notebook=nb, ray='local', retries=1)
    assert s['failed'] == [] and [(r['run'], r['status'], r['attempts']) for r in s['runs']] == [
        ('seq_len-32', 'ok', 2), ('seq_len-64', 'ok', 2)]
    assert _baselines(work/'runs-ray') == {'seq_len-32': 32, 'seq_len-64': 64}
    assert s['folders'] == [str(work.resolve())]      # the runs' model folder, where the command line writes the leaderboard
    assert {r['run'] for r in s['variants']} == {'seq_len-32', 'seq_len-64'}     # gathered as a batch in order gathers

def test_ray_reports_runs_that_keep_failing(setup):
    from quantized_llms.batch import run_batch
    work, cfg = setup
    nb = _notebook(work/'flaky2.ipynb', flaky=True)
    s = run_batch(cfg, {'eval.seq_len': [32]}, work/'runs-fail', notebook=nb, ray='local', retries=0)
    assert s['failed'] == ['seq_len-32'] and 'first attempt of every run fails' in s['runs'][0]['error']
    assert s['runs'][0]['attempts'] == 1

def test_ray_and_in_order_give_the_same_results(setup):
    from quantized_llms.batch import run_batch
    work, cfg = setup
    nb = _notebook(work/'plain.ipynb', flaky=False)
    a = run_batch(cfg, {'eval.seq_len': [32, 64]}, work/'runs-a', notebook=nb, ray='local')
    b = run_batch(cfg, {'eval.seq_len': [32, 64]}, work/'runs-b', notebook=nb)
    ppl = lambda s: {(r['run'], r['variant']): r['perplexity'] for r in s['variants']}
    assert ppl(a) == ppl(b) and len(ppl(a)) == 2
