"""The block-wise engine on CUDA: the Triton column kernel against the torch loop, and every algorithm with the model
kept on the CPU while its blocks visit the GPU. Skipped where no CUDA device is present."""
import copy, sys
from pathlib import Path
import pytest
import torch
from quantized_llms.core import QuantSpec
from quantized_llms.quantizers import minmax_params
from quantized_llms.blocks import transformer_blocks
from quantized_llms.algorithms.gptq import gptq_block_torch, gptq_block_triton, gptq_quantize_weight, triton
from quantized_llms.algorithm import get_algorithm
from quantized_llms.engine import quantize_model
from quantized_llms.models import tiny_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
sys.path.insert(0, str(Path(__file__).parents[1]/'benchmarks'))
from gptq_speed import word_tokenizer       # a tokenizer built offline (the embedded model's may not be installed)

def _hinv(n, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(4 * n, n, generator=g) * torch.linspace(0.1, 3, n)
    H = 2 * X.T @ X / X.shape[0]
    H[range(n), range(n)] += 0.01 * H.diag().mean()
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True), H

def test_grid_scales_correctly_rounded_on_gpu():
    "The grid's scales on the GPU are the CPU's bit for bit (a CUDA division by a Python number is not correctly rounded)."
    W = torch.randn(4096, 128, generator=torch.Generator().manual_seed(0))
    for sym in (True, False):
        for bits in (2, 4, 8):
            cpu, gpu = minmax_params(W, bits, sym), minmax_params(W.cuda(), bits, sym)
            assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu, gpu)), (bits, sym)

@pytest.mark.skipif(triton is None, reason='needs triton')
@pytest.mark.parametrize('rows,n,gs,bits,sym', [(2304, 128, 128, 4, True), (300, 128, 32, 4, False), (77, 64, 64, 8, True),
                                                (1000, 96, 32, 2, False), (16, 1, 1, 4, True)])
def test_triton_block_is_bit_identical(rows, n, gs, bits, sym):
    Hinv, _ = _hinv(n, rows)
    W = torch.randn(rows, n, generator=torch.Generator().manual_seed(n)).cuda()
    Hinv = Hinv.cuda()
    S, Z = map(torch.stack, zip(*[minmax_params(W[:, g:g + gs], bits, sym) for g in range(0, n, gs)]))
    cg = [c // gs for c in range(n)]
    ref = gptq_block_torch(W.clone(), Hinv, S, Z, cg, 2 ** bits - 1)
    got = gptq_block_triton(W.clone(), Hinv, S, Z, cg, 2 ** bits - 1)
    for name, a, b in zip(('rounded', 'errors'), ref[:2], got[:2]):
        assert torch.equal(a, b), f'{name}: {(a != b).sum().item()} of {a.numel()} differ, max {(a - b).abs().max().item()}'
    torch.testing.assert_close(ref[2], got[2], rtol=1e-6, atol=0)      # the loss statistic (summed, not stored)

@pytest.mark.skipif(triton is None, reason='needs triton')
@pytest.mark.parametrize('order', ['natural', 'desc_act', 'group_aware'])
def test_gptq_weight_same_with_either_kernel(order):
    _, H = _hinv(576, 1)
    W = torch.randn(960, 576, generator=torch.Generator().manual_seed(2)).cuda()
    spec = QuantSpec(4, True, 'per_group', 128)            # 576 columns: the last group is short, as in SmolLM2
    a = gptq_quantize_weight(W, H.cuda(), spec, order=order, return_grid=True, kernel='torch')
    b = gptq_quantize_weight(W, H.cuda(), spec, order=order, return_grid=True, kernel='triton')
    assert torch.equal(a[0], b[0])
    for k in ('scale', 'zero', 'g_idx'): assert torch.equal(a[2][k], b[2][k]), k

def test_gpu_matches_cpu_within_rounding():
    _, H = _hinv(256, 3)
    W = torch.randn(512, 256, generator=torch.Generator().manual_seed(4))
    spec = QuantSpec(4, True, 'per_group', 64)
    cpu = gptq_quantize_weight(W, H, spec, return_grid=True)
    gpu = gptq_quantize_weight(W.cuda(), H.cuda(), spec, return_grid=True)
    # the block-to-block matmul sums in another order on the GPU: a few codes may land on the other side of a tie
    codes = lambda r: torch.round(r[0].cpu() / r[2]['scale'].cpu()[:, r[2]['g_idx'].cpu().long()])
    assert (codes(cpu) != codes(gpu)).float().mean() < 1e-3

@pytest.mark.parametrize('model_type', ['gpt_bigcode', 'llama'])
@pytest.mark.parametrize('algo', ['gptq', 'awq', 'rtn', 'smoothquant'])
def test_engine_offloaded_equals_resident(model_type, algo):
    "The model on the CPU with blocks visiting the GPU gives what the model wholly on the GPU gives."
    model = tiny_model(model_type, vocab_size=512)
    calib = torch.randint(0, 512, (8, 64), generator=torch.Generator().manual_seed(0))
    kw = dict(weight=QuantSpec(4, True, 'per_group', 32)) if algo != 'smoothquant' else {}
    resident, offloaded = copy.deepcopy(model).cuda(), copy.deepcopy(model)
    a, b = get_algorithm(algo)(**kw), get_algorithm(algo)(**kw)
    quantize_model(resident, calib, a, progress=False)
    stats = quantize_model(offloaded, calib, b, progress=False, device='cuda')
    assert next(offloaded.parameters()).device.type == 'cpu'
    assert all(p.device.type == 'cpu' for p in offloaded.parameters())
    ra, rb = resident.state_dict(), offloaded.state_dict()
    for k in ra: assert torch.equal(ra[k].cpu(), rb[k]), k
    assert stats['peak_cuda_bytes'] is not None
    if algo in ('gptq', 'rtn'):
        assert len(b.grids) == len(a.grids) and all(g['scale'].device.type == 'cpu' for g in b.grids.values())

def test_packing_on_gpu_writes_the_same_bytes(tmp_path):
    "save_gptq_checkpoint computes and packs the codes on the GPU: the file holds what packing on the CPU writes."
    from safetensors.torch import load_file
    from quantized_llms.gptq_format import save_gptq_checkpoint
    model = tiny_model('llama', vocab_size=49152)
    calib = torch.randint(0, 49152, (8, 64), generator=torch.Generator().manual_seed(0))
    alg = get_algorithm('gptq')(weight=QuantSpec(4, True, 'per_group', 32))
    quantize_model(model, calib, alg, progress=False, device='cuda')
    names = {m: n for n, m in model.named_modules()}
    grids = {names[l]: g for l, g in alg.grids.items()}
    tok = word_tokenizer(49152)
    files = {d: load_file(save_gptq_checkpoint(model, tok, grids, alg.config.weight, tmp_path/d, device=d)/'model.safetensors')
             for d in ('cpu', 'cuda')}
    assert files['cpu'].keys() == files['cuda'].keys()
    for k, v in files['cpu'].items(): assert torch.equal(v, files['cuda'][k]), k

@pytest.mark.skipif(__import__('importlib').util.find_spec('gptqmodel') is None, reason='needs gptqmodel')
@pytest.mark.parametrize('arch', ['gpt_bigcode', 'llama'])
def test_same_checkpoint_as_gptqmodel_on_gpu(arch, tmp_path):
    "Our GPTQ on the GPU writes GPTQModel's checkpoint byte for byte (fp16 model, same windows and settings)."
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
    from quantized_llms.core import RunConfig
    from quantized_llms.algorithm import get_algorithm, QuantizeJob
    from quantized_llms.models import save_checkpoint
    tok = word_tokenizer(49152)
    model = tiny_model(arch, seed=5).half()
    src = save_checkpoint(model, tok, tmp_path/'src')
    # ours quantizes the model GPTQModel loads: `.half()` also casts Llama's rotary inv_freq buffer to fp16 (cos/sin off
    # by up to 0.008), which a reload keeps in fp32
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float16).eval()
    calib = torch.randint(0, 49152, (8, 128), generator=torch.Generator().manual_seed(0))
    qc = RunConfig.from_dict({'quant': {'weight': {'group_size': 32}, 'special': {'backend': 'triton'}}}).quant
    ref = get_algorithm('gptqmodel').quantize(QuantizeJob(qc, model, tok, calib, 'cuda', real_dir=tmp_path/'ref', source_dir=lambda: src))
    qc = RunConfig.from_dict({'quant': {'method': 'gptq', 'weight': {'group_size': 32}}}).quant
    ours = get_algorithm('gptq').quantize(QuantizeJob(qc, model, tok, calib, 'cuda', real_dir=tmp_path/'ours'))
    a, b = (load_file(str(r.real_dir/'model.safetensors')) for r in (ours, ref))
    keys = [k for k in b if k.endswith(('.qweight', '.qzeros', '.scales', '.g_idx'))]
    assert keys and [k for k in keys if not torch.equal(a[k], b[k])] == []

def test_gpu_memory_cap_stops_what_a_smaller_card_cannot_hold():
    from quantized_llms.core import limit_gpu_memory
    total = torch.cuda.get_device_properties(0).total_memory
    try:
        frac = limit_gpu_memory(1, 'cuda')                  # a 1 GiB card
        assert abs(frac - 2**30 / total) < 1e-9
        torch.cuda.empty_cache()
        with pytest.raises(torch.OutOfMemoryError): torch.empty(2 * 2**30, dtype=torch.uint8, device='cuda')
        x = torch.empty(2**29, dtype=torch.uint8, device='cuda'); del x     # half of it fits
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0); torch.cuda.empty_cache()

def test_quarot_on_gpu_as_on_cpu():
    "QuaRot with the model resident on the GPU, offloaded to it, and on the CPU: the same rotation and nearly the same codes."
    model = tiny_model('llama', vocab_size=512, tie_word_embeddings=True)
    calib = torch.randint(0, 512, (8, 64), generator=torch.Generator().manual_seed(0))
    kw = dict(weight=QuantSpec(4, False, 'per_group', 32))
    runs = {}
    for where in ('cpu', 'offloaded', 'resident'):
        m = copy.deepcopy(model).cuda() if where == 'resident' else copy.deepcopy(model)
        alg = get_algorithm('quarot')(**kw)
        quantize_model(m, calib, alg, progress=False, device='cuda' if where == 'offloaded' else None)
        assert alg.rotated['relative_error'] < 1e-4 and len(alg.grids) == 7 * model.config.num_hidden_layers, where
        runs[where] = {k: v.cpu() for k, v in m.state_dict().items()}
    for where in ('offloaded', 'resident'):
        a, b = runs['cpu'], runs[where]
        assert torch.equal(a['model.embed_tokens.weight'], b['model.embed_tokens.weight']) or where == 'resident'
        for k in a:
            if k.endswith('proj.weight'):   # sums in another order: a few codes land on the other side of a tie
                rel = ((a[k] - b[k]).norm() / a[k].norm()).item()
                assert rel < 0.02, (where, k, rel)

@pytest.mark.parametrize('arch', ['llama', 'gpt_bigcode'])
def test_decode_cuda_graph_tokens_are_greedy_decode(arch):
    "The timed decode replayed as a CUDA graph writes the tokens `generate` gives, step after step, call after call."
    from quantized_llms.timing import TorchRunner
    m = tiny_model(arch, vocab_size=256).cuda().eval()
    r = TorchRunner(m)
    dec = r.decode(batch=2, n_gen=8)
    assert r.mode == 'CUDA graph'
    with torch.no_grad():
        ref = m.generate(r._ids(2, 1), max_new_tokens=8, do_sample=False, min_new_tokens=8, pad_token_id=0)[:, 1:]
    for _ in range(2):
        dec(); torch.cuda.synchronize()
        assert torch.equal(r.tokens, ref)
