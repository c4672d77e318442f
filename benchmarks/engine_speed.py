"""Our block-wise GPTQ against GPTQModel's, back to back on one machine: same model, same calibration windows, same
settings (W4 g128 symmetric, damp 0.01, group-aware order). Records seconds, peak memory, the ratio ours/GPTQModel,
where our time goes, and whether the packed checkpoints (qweight, qzeros, scales, g_idx) are identical.

    python benchmarks/engine_speed.py --shape starcoderbase-1b --device cuda --out results/starcoderbase-1b-shape
    python benchmarks/engine_speed.py --shape smollm2-135m --device cpu --out results/SmolLM2-135M-Instruct

Shapes of gated models are built from their published configs with random fp16 weights and random calibration tokens
(time and memory depend on shapes only); `smollm2-135m` is the real model with the main job's calibration set. On a
GPU the model stays on the CPU and one block at a time visits the GPU, for both implementations. A 2-layer copy of
the model goes through both first, so that kernel builds (Triton's, GPTQModel's CUDA extension) stay out of the times.
"""
import argparse, copy, sys, tempfile, time
from collections import defaultdict
from pathlib import Path
import torch

# CodeLlama-7b, from its published config: a 7B shape for the one-block-on-the-GPU path
EXTRA_SHAPES = {'codellama-7b': dict(model_type='llama', vocab_size=32016, hidden_size=4096, intermediate_size=11008,
                                     num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                                     max_position_embeddings=16384, rope_theta=1e6)}

def build(shape: str, work: Path, n_layers=None, save=True):
    "(model, tokenizer, checkpoint dir, calibration windows) for a named shape, or the real SmolLM2."
    from transformers import AutoConfig, AutoModelForCausalLM
    from gptq_speed import SHAPES, word_tokenizer
    SHAPES = {**SHAPES, **EXTRA_SHAPES}
    if shape == 'smollm2-135m':
        from quantized_llms.models import load_model
        from quantized_llms.data import load_text, tokenize_text, calibration_windows
        model, tok = load_model('smollm2-135m', device='cpu')
        calib = calibration_windows(tokenize_text(tok, load_text('offline-prose', 'train')), 128, 512, seed=42)
        if n_layers: model = _truncated(model, n_layers)
        cfg_model = model
    else:
        kw = dict(SHAPES[shape]); mt = kw.pop('model_type')
        if n_layers: kw['n_layer' if mt == 'gpt_bigcode' else 'num_hidden_layers'] = n_layers
        torch.manual_seed(0)
        cfg_model = model = AutoModelForCausalLM.from_config(AutoConfig.for_model(mt, **kw), dtype=torch.float16)
        tok = word_tokenizer(kw['vocab_size'])
        calib = torch.randint(2, kw['vocab_size'], (128, 512), generator=torch.Generator().manual_seed(0))
    ckpt = work/f'{shape}-{n_layers or "all"}'
    if save: _save_plain(cfg_model, tok, ckpt)
    return model.eval(), tok, ckpt, calib

def _truncated(model, n):
    from transformers import AutoModelForCausalLM
    cfg = copy.deepcopy(model.config); cfg.num_hidden_layers = n
    small = AutoModelForCausalLM.from_config(cfg, dtype=model.dtype)
    small.load_state_dict(model.state_dict(), strict=False)
    return small

def _save_plain(model, tok, path):
    from quantized_llms.models import save_checkpoint
    save_checkpoint(model, tok, path, overwrite=True)

class PhaseTimer:
    "Wall time per phase of our engine, by wrapping its functions (synchronising the GPU at each edge)."
    def __init__(self, device):
        self.dev, self.t = torch.device(device), defaultdict(float)
    def _sync(self):
        if self.dev.type == 'cuda': torch.cuda.synchronize()
    def wrap(self, module, name, phase):
        f = getattr(module, name)
        def timed(*a, **k):
            self._sync(); t0 = time.perf_counter()
            try: return f(*a, **k)
            finally: self._sync(); self.t[phase] += time.perf_counter() - t0
        setattr(module, name, timed)
        return f

def ours(model, tok, calib, out_dir, device, profile=None, algo='gptq', settings=None, batch_size=8):
    from quantized_llms import engine
    from quantized_llms.algorithms import gptq
    from quantized_llms.algorithm import get_algorithm
    from quantized_llms.engine import quantize_model
    from quantized_llms.core import Measure
    from quantized_llms.gptq_format import save_gptq_checkpoint
    model = copy.deepcopy(model)
    alg = get_algorithm(algo)(**engine_grid(algo), **(settings or {}))
    restore = []
    if profile is not None:
        restore = [(mod, n, profile.wrap(mod, n, ph)) for mod, n, ph in
                   ((gptq, 'accumulate_hessian', 'Hessians (block forwards to each group, x^T x)'),
                    (gptq, 'gptq_quantize_weight', 'GPTQ maths (Cholesky, column loop)'),
                    (engine, 'capture_block_inputs', 'capturing block 0 inputs'))]
    try:
        with Measure() as m:
            quantize_model(model, calib, alg, batch_size=batch_size, device=device)
            names = {mod: n for n, mod in model.named_modules()}
            t0 = time.perf_counter()
            if alg.act is None:    # a packed checkpoint holds weight-only models
                save_gptq_checkpoint(model, tok, {names[l]: g for l, g in alg.grids.items()}, alg.weight, out_dir)
                if profile is not None: profile.t['packing and saving the checkpoint'] += time.perf_counter() - t0
    finally:
        for mod, n, f in restore: setattr(mod, n, f)
    return dict(seconds=m.seconds, peak_rss_bytes=m.peak_rss_bytes, peak_cuda_bytes=m.peak_cuda_bytes)

def engine_grid(algo: str) -> dict:
    "The grid our engine runs `algo` on here: W4 g128 symmetric, as GPTQModel's default; SmoothQuant keeps its W8A8."
    from quantized_llms.core import QuantSpec
    return {} if algo == 'smoothquant' else dict(weight=QuantSpec(4, True, 'per_group', 128))

def quant_text(algo: str) -> str:
    "The settings `algo` runs with here, read off its config (so a record cannot describe other settings)."
    import dataclasses
    from quantized_llms.algorithm import get_algorithm
    alg = get_algorithm(algo)(**engine_grid(algo))
    grid = lambda what, q: f"{what} {q.bits}-bit {q.granularity}{f' {q.group_size}' if q.granularity == 'per_group' else ''} {'sym' if q.sym else 'asym'}"
    rest = dataclasses.asdict(alg.config)
    return ', '.join([grid('weight', alg.weight)] + ([grid('act', alg.act) + ' (fake-quantized)'] if alg.act else [])
                     + [f'{k} {v}' for k, v in rest.items()])

def parse_variants(text: str) -> list:
    "'stack_shared_input=false;kernel=torch,batch_size=1' -> [{'stack_shared_input': False}, {'kernel': 'torch', 'batch_size': 1}]."
    import yaml
    return [{k.strip(): yaml.safe_load(v) for k, v in (kv.split('=', 1) for kv in part.split(','))} for part in text.split(';') if part.strip()]

def gptqmodel(model, tok, ckpt, calib, out_dir, device):
    from quantized_llms.core import RunConfig
    from quantized_llms.algorithm import get_algorithm, QuantizeJob
    backend = 'triton' if torch.device(device).type == 'cuda' else 'auto'
    qc = RunConfig.from_dict({'quant': {'method': 'gptqmodel', 'special': {'backend': backend}}}).quant
    res = get_algorithm('gptqmodel').quantize(QuantizeJob(qc, model, tok, calib, device, real_dir=out_dir, source_dir=lambda: ckpt))
    return dict(seconds=res.seconds, peak_rss_bytes=res.peak_rss_bytes, peak_cuda_bytes=res.peak_cuda_bytes)

def compare_packed(a: Path, b: Path) -> dict:
    "Tensors of the two packed checkpoints that differ, and the share of 4-bit codes that differ."
    from safetensors.torch import load_file
    from quantized_llms.gptq_format import unpack_int32
    A = {k: v for f in sorted(a.glob('*.safetensors')) for k, v in load_file(f).items()}
    B = {k: v for f in sorted(b.glob('*.safetensors')) for k, v in load_file(f).items()}
    keys = sorted(k for k in A if k.endswith(('.qweight', '.qzeros', '.scales', '.g_idx')))
    missing = [k for k in keys if k not in B]
    differ = [k for k in keys if k in B and not torch.equal(A[k], B[k])]
    codes = total = 0
    for k in keys:
        if k.endswith('.qweight') and k in B:
            qa, qb = unpack_int32(A[k], 4, 0), unpack_int32(B[k], 4, 0)
            codes += int((qa != qb).sum()); total += qa.numel()
    return dict(tensors=len(keys), missing=missing, differing=len(differ), differing_first=differ[:4],
                differing_codes=codes, codes=total, identical=not missing and not differ)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--shape', default='starcoderbase-1b')
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--out', required=True)
    ap.add_argument('--skip-gptqmodel', action='store_true', help='time ours only (e.g. a shape GPTQModel cannot fit)')
    ap.add_argument('--algo', default='gptq', help="our engine's algorithm (gptq, awq, rtn): time and peak memory")
    ap.add_argument('--variants', default='', help="more runs of ours with engine settings, each compared with GPTQModel's "
                    "checkpoint, e.g. 'stack_shared_input=false;kernel=torch;hessian_per_window=false;batch_size=1'")
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from quantized_llms.core import atomic_write_json, atomic_write_text, markdown_table, run_metadata
    work = Path(tempfile.mkdtemp())
    if torch.device(a.device).type == 'cuda':      # warm-up on 2 layers: kernel builds out of the timed runs
        m2, t2, c2, cal2 = build(a.shape, work, n_layers=2, save=not a.skip_gptqmodel)
        t0 = time.perf_counter(); ours(m2, t2, cal2[:16], work/'warm-ours', a.device, algo=a.algo); w_ours = time.perf_counter() - t0
        w_ref = None
        if not a.skip_gptqmodel:
            t0 = time.perf_counter(); gptqmodel(m2, t2, c2, cal2[:16], work/'warm-ref', a.device); w_ref = time.perf_counter() - t0
        print(f'warm-up on 2 layers: ours {w_ours:.1f} s, GPTQModel {w_ref} s', flush=True); del m2
    model, tok, ckpt, calib = build(a.shape, work, save=not a.skip_gptqmodel)
    prof = PhaseTimer(a.device)
    runs = {'ours': ours(model, tok, calib, work/'ours', a.device, prof, a.algo)}
    runs['ours']['phases'] = {k: round(v, 2) for k, v in prof.t.items()}
    print('ours:', runs['ours'], flush=True)
    variants = []
    if not a.skip_gptqmodel:
        runs['gptqmodel'] = gptqmodel(model, tok, ckpt, calib, work/'gptqmodel', a.device)
        print('GPTQModel:', runs['gptqmodel'], flush=True)
        same = compare_packed(work/'ours', work/'gptqmodel')
        print('packed:', same, flush=True)
        for i, v in enumerate(parse_variants(a.variants)):
            bs = v.pop('batch_size', 8)
            r = ours(model, tok, calib, work/f'variant{i}', a.device, None, a.algo, v, bs)
            r.update(settings={**v, 'batch_size': bs}, packed=compare_packed(work/f'variant{i}', work/'gptqmodel'))
            print('variant:', r, flush=True); variants.append(r)
    else: same = None
    rec = dict(shape=a.shape, device=a.device, n_params=model.num_parameters(), dtype=str(model.dtype),
               weights='real' if a.shape == 'smollm2-135m' else 'random (shape of the published config)',
               calib=f'{calib.shape[0]} x {calib.shape[1]} tokens', quant=quant_text(a.algo),
               algo=a.algo, runs=runs, packed=same, variants=variants, meta=run_metadata('python benchmarks/engine_speed.py ' + ' '.join(sys.argv[1:])))
    peak = lambda r: (f"{r['peak_cuda_bytes'] / 2**30:.2f}" if r['peak_cuda_bytes'] else '—')
    rows = [dict(implementation={'ours': f'quantized_llms block-wise {a.algo.upper()}', 'gptqmodel': 'GPTQModel 7.7.0'}[k],
                 seconds=f"{r['seconds']:.1f}", peak_GPU_GiB=peak(r), peak_RSS_GiB=f"{r['peak_rss_bytes'] / 2**30:.2f}",
                 vs_GPTQModel=f"{r['seconds'] / runs['gptqmodel']['seconds']:.2f}x" if 'gptqmodel' in runs else '—')
            for k, r in runs.items()]
    phases = [dict(phase=k, seconds=v) for k, v in runs['ours']['phases'].items()]
    phases.append(dict(phase='the rest (block forwards for the next inputs, moving blocks to and from the GPU)',
                       seconds=round(runs['ours']['seconds'] - sum(runs['ours']['phases'].values()), 2)))
    md = (f"# Block-wise {a.algo.upper()}{' against GPTQModel' if same else ''}: {a.shape}\n\n{rec['n_params'] / 1e6:.0f}M parameters ({rec['weights']}, "
          f"{rec['dtype']}), {rec['calib']} of calibration, {rec['quant']}, on {rec['meta']['device']}. "
          + ("Both include writing the packed checkpoint; GPTQModel's time includes loading the checkpoint it quantizes.\n\n"
             if same else "The time includes writing the packed checkpoint, where the algorithm has one.\n\n")
          + markdown_table(rows) + "\nWhere our time goes:\n\n" + markdown_table(phases)
          + (f"\nPacked checkpoints: {'identical' if same['identical'] else 'different'} ({same['tensors']} tensors; "
             f"{same['differing']} differ; {same['differing_codes']} of {same['codes']} 4-bit codes differ).\n" if same else '')
          + (("\nOur engine with other settings, each against GPTQModel's checkpoint:\n\n" + markdown_table([dict(
              settings=', '.join(f'{k}={v}' for k, v in r['settings'].items()), seconds=f"{r['seconds']:.1f}",
              differing_codes=f"{r['packed']['differing_codes']} of {r['packed']['codes']}",
              differing_tensors=r['packed']['differing']) for r in variants])) if variants else '')
          + f"\nProduced by `{rec['meta']['command']}` on {rec['meta']['device']}, {rec['meta']['time_utc']}.\n")
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    stem = 'engine_speed' if a.algo == 'gptq' else f'engine_speed-{a.algo}'     # one record per algorithm
    atomic_write_json(out/f'{stem}.json', rec); atomic_write_text(out/f'{stem}.md', md)
    print(md)

if __name__ == '__main__': main()
