"""Which tensors of a tiny model's packed checkpoint differ between our GPTQ and GPTQModel's on a GPU, and whether
stacking the linears that share an input (q/k/v, gate/up), the per-window Hessian sum or the column kernel is the
cause: the setting of tests/test_gpu.py::test_same_checkpoint_as_gptqmodel_on_gpu, run with each of our engine's
variants. The Hessian each implementation builds for every linear is compared too (it holds the linear's inputs).

    python benchmarks/tiny_gpu_diff.py --arch llama      # on a CUDA machine with gptqmodel installed
"""
import argparse, sys, tempfile
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).parent))
from engine_speed import compare_packed
from gptq_speed import word_tokenizer

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--arch', default='llama')
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--half-buffers', action='store_true', help="quantize the `.half()` model (fp16 rotary buffers) "
                    "instead of the checkpoint reloaded as GPTQModel loads it")
    a = ap.parse_args()
    from quantized_llms.core import RunConfig
    from quantized_llms.methods import get_method, QuantizeJob
    from quantized_llms.models import save_checkpoint, tiny_model
    work = Path(tempfile.mkdtemp()); tok = word_tokenizer(49152)
    model = tiny_model(a.arch, seed=5).half()
    src = save_checkpoint(model, tok, work/'src')
    if not a.half_buffers:     # as GPTQModel loads it: `.half()` casts the rotary inv_freq buffer too, a reload keeps it fp32
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float16).eval()
    calib = torch.randint(0, 49152, (8, 128), generator=torch.Generator().manual_seed(0))
    theirs, ours_H = record_hessians()
    backend = 'triton' if torch.device(a.device).type == 'cuda' else 'torch'
    qc = RunConfig.from_dict({'quant': {'weight': {'group_size': 32}, 'special': {'backend': backend}}}).quant
    get_method('gptqmodel').quantize(QuantizeJob(qc, model, tok, calib, a.device, real_dir=work/'ref', source_dir=lambda: src))
    for special in ({}, {'stack_shared_input': False}, {'hessian_per_window': False}, {'kernel': 'torch'},
                    {'stack_shared_input': False, 'kernel': 'torch'}):
        qc = RunConfig.from_dict({'quant': {'method': 'gptq', 'weight': {'group_size': 32}, 'special': special}}).quant
        out = work/f'ours-{len(list(work.iterdir()))}'
        get_method('gptq').quantize(QuantizeJob(qc, model, tok, calib, a.device, real_dir=out))
        r = compare_packed(out, work/'ref')
        print(f"{a.arch} {special or 'defaults'}: {r['differing']} of {r['tensors']} tensors differ, "
              f"{r['differing_codes']} of {r['codes']} codes; first: {r['differing_first']}", flush=True)
        if not special:
            for n, H in ours_H.items():
                i, name = n.split('.', 1)
                R = theirs.get(name, [])[int(i)] if int(i) < len(theirs.get(name, [])) else None
                if R is not None:
                    print(f"  Hessian of layer {n}: equal {torch.equal(H, R)}, max |dH| {(H - R).abs().max().item():.3g}, "
                          f"relative {((H - R).norm() / R.norm()).item():.3g}", flush=True)
            ours_H.clear(); ours_H['off'] = None

def record_hessians():
    "Dicts that fill with the Hessians GPTQModel (linear name -> one per layer) and our engine ('layer.name') build."
    import gptqmodel.quantization.gptq as G
    from quantized_llms import blockwise
    theirs, ours = {}, {}
    fin = G.GPTQ.finalize_hessian
    def finalize(self, *a, **k):
        r = fin(self, *a, **k)
        n = str(getattr(self, 'name', ''))
        if n and self.H is not None: theirs.setdefault(n, []).append(self.H.detach().float().cpu().clone())   # by layer
        return r
    G.GPTQ.finalize_hessian = finalize
    acc, layer = blockwise._accumulate_hessian, {}
    def accumulate(block, name, *a, **k):
        H = acc(block, name, *a, **k)
        if 'off' not in ours:
            i = layer.setdefault(id(block), len(layer))
            ours.setdefault(f'{i}.{name}', H.detach().float().cpu().clone())
        return H
    blockwise._accumulate_hessian = accumulate
    return theirs, ours

if __name__ == '__main__': main()
