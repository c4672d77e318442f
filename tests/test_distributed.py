"""Data-parallel calibration: with torch.distributed (gloo, CPU processes here; NCCL on GPUs) each rank feeds its share
of the calibration windows through every block and the statistics are reduced over the ranks. One rank and two must
give the same quantized weights and grids, byte for byte, on every rank."""
from pathlib import Path
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ALGOS = {'gptq': dict(weight=dict(bits=4, sym=True, granularity='per_group', group_size=32)),
         'smoothquant': {}, 'awq': dict(weight=dict(bits=4, sym=True, granularity='per_group', group_size=32)),
         # AWQ on a seeded sample of the tokens (100 of 384): each rank fills the sampled rows of its own windows
         'awq_sampled': dict(weight=dict(bits=4, sym=True, granularity='per_group', group_size=32), search_tokens=100, clip_tokens=50)}

def _worker(rank, world, init, out, algo, arch, reduces=True):
    from quantized_llms.core import QuantSpec
    from quantized_llms.algorithm import get_algorithm
    from quantized_llms.engine import quantize_model
    from quantized_llms.models import tiny_model
    dist.init_process_group('gloo', init_method=f'file://{init}', rank=rank, world_size=world)
    try:
        model = tiny_model(arch, vocab_size=512, seed=0)
        calib = torch.randint(0, 512, (8, 48), generator=torch.Generator().manual_seed(0))
        kw = {k: QuantSpec(**v) if isinstance(v, dict) else v for k, v in ALGOS[algo].items()}
        alg = get_algorithm(algo.removesuffix('_sampled'))(**kw)
        if not reduces: alg.data_parallel = False       # as an algorithm whose statistics are not reduced over ranks
        try: quantize_model(model, calib, alg, batch_size=2, progress=False)
        except Exception as e:
            torch.save({'error': str(e)}, f'{out}.{rank}'); return
        names = {m: n for n, m in model.named_modules()}
        torch.save({'state': model.state_dict(), 'grids': {names[l]: g for l, g in alg.grids.items()}}, f'{out}.{rank}')
    finally: dist.destroy_process_group()

def _run(tmp_path, world, algo, arch, reduces=True):
    out = tmp_path/f'{algo}-{arch}-{world}-{reduces}'
    mp.spawn(_worker, args=(world, tmp_path/f'init-{algo}-{arch}-{world}-{reduces}', out, algo, arch, reduces), nprocs=world, join=True)
    return [torch.load(f'{out}.{r}', weights_only=False) for r in range(world)]

def _same(a, b):
    assert a['state'].keys() == b['state'].keys()
    for k in a['state']: assert torch.equal(a['state'][k], b['state'][k]), k
    assert a['grids'].keys() == b['grids'].keys()
    for n in a['grids']:
        for k in a['grids'][n]: assert torch.equal(a['grids'][n][k], b['grids'][n][k]), (n, k)

@pytest.mark.parametrize('algo,arch', [('gptq', 'llama'), ('gptq', 'gpt_bigcode'), ('smoothquant', 'llama'), ('awq', 'llama'),
                                       ('awq_sampled', 'llama')])
def test_one_and_two_ranks_give_the_same_model(tmp_path, algo, arch):
    one, two = _run(tmp_path, 1, algo, arch), _run(tmp_path, 2, algo, arch)
    _same(two[0], two[1])        # every rank holds the same model
    _same(one[0], two[0])

def test_algorithms_without_reduction_are_refused(tmp_path):
    got = _run(tmp_path, 2, 'awq', 'llama', reduces=False)
    assert all('awq does not calibrate data-parallel' in r['error'] for r in got)

def _torchrun(n, cfg_path, results, extra=()):
    import os, subprocess, sys
    from pathlib import Path
    torchrun = Path(sys.executable).parent/'torchrun'
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    cli = Path(sys.executable).parent/'quantized-llms'      # torchrun runs the console script as a Python file
    return subprocess.run([str(torchrun), '--standalone', f'--nproc-per-node={n}', str(cli), 'run',
                           str(cfg_path), '--results-dir', str(results), *extra], env=env, capture_output=True, text=True, timeout=600)

def test_quantized_llms_run_under_torchrun(tmp_path):
    "`torchrun --nproc-per-node N $(which quantized-llms) run CONFIG`: rank 0 runs the stages, the others calibrate; any N, one checkpoint."
    import json, yaml
    from safetensors.torch import load_file
    from quantized_llms.models import tiny_model, save_checkpoint, load_tokenizer
    save_checkpoint(tiny_model('llama', seed=2), load_tokenizer('smollm2-135m'), tmp_path/'tiny')
    cfg = dict(stages=['quantize'], model=dict(name=str(tmp_path/'tiny')), calib=dict(n_samples=8, seq_len=64),
               eval=dict(seq_len=64, max_windows=2, positions=['pretrain', 'fake_quant']),
               quant=dict(method='gptq', weight=dict(group_size=32)), save=dict(output_dir=str(tmp_path/'out'), modes=['real']))
    out = {}
    for n in (1, 2, 3):
        c = {**cfg, 'save': {**cfg['save'], 'output_dir': str(tmp_path/f'out{n}')}}
        (tmp_path/f'run{n}.yaml').write_text(yaml.safe_dump(c))
        r = _torchrun(n, tmp_path/f'run{n}.yaml', tmp_path/f'res{n}')
        assert r.returncode == 0, r.stderr[-3000:]
        rec = json.loads((tmp_path/f'res{n}'/'tiny'/'quantize.json').read_text())
        out[n] = rec, load_file(str(Path(rec['outputs']['real']['path'])/'model.safetensors'))
    (r1, w1), (r2, w2), (r3, w3) = out[1], out[2], out[3]
    assert w1.keys() == w2.keys() == w3.keys() and all(torch.equal(w1[k], w2[k]) and torch.equal(w2[k], w3[k]) for k in w2)   # 1, 2, 3 ranks: the same bytes
    assert r1["positions"]["fake_quant"] == r2["positions"]["fake_quant"] == r3["positions"]["fake_quant"]
    (tmp_path/'bad.yaml').write_text(yaml.safe_dump({**cfg, 'quant': {'method': 'gptqmodel', 'weight': {'group_size': 32}}}))
    r = _torchrun(2, tmp_path/'bad.yaml', tmp_path/'res-bad')
    assert r.returncode != 0 and 'does not calibrate data-parallel (2 ranks)' in r.stderr
