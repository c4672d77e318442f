"""Where our GPTQ step and GPTQModel's part, on one linear: the same fp16 weight and the same Hessian (GPTQModel's own,
captured) go through GPTQModel's `GPTQ.quantize` and our `gptq_quantize_weight`; the script compares the inverse
Hessian factor each uses, then the rounded weights, for each of our column kernels and with GPTQModel's CUDA block
kernel on and off.

    python benchmarks/gptq_step_diff.py --device cuda [--rows 2304 --cols 2048]
"""
import argparse, json, os
import torch

def gptqmodel_step(W16, X, device):
    "GPTQModel on one linear: (its Hessian, its inverse factor, its rounded weight in the original order)."
    from gptqmodel.quantization.config import QuantizeConfig
    from gptqmodel.quantization.gptq import GPTQ
    lin = torch.nn.Linear(W16.shape[1], W16.shape[0], bias=False, dtype=torch.float16, device=device)
    lin.weight.data.copy_(W16)
    q = QuantizeConfig(bits=4, group_size=128, sym=True, desc_act=False, act_group_aware=True, damp_percent=0.01,
                       damp_auto_increment=0.0025)
    g = GPTQ(lin, q); g.quantizer.configure(perchannel=True)
    seen = {}
    inv = g.hessian_inverse
    def hinv(H):
        seen['H_ordered'] = H.detach().clone()
        out = inv(H); seen['Hinv'] = out[0].detach().clone(); return out
    g.hessian_inverse = hinv
    for xw in X: g.add_batch(xw.unsqueeze(0), None)
    H = g.finalize_hessian().detach().clone()
    Q = g.quantize()[0]
    return H, seen, Q.half()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--rows', type=int, default=2304); ap.add_argument('--cols', type=int, default=2048)
    ap.add_argument('--windows', type=int, default=16); ap.add_argument('--tokens', type=int, default=512)
    a = ap.parse_args()
    from quantized_llms.blockwise import gptq_quantize_weight, gar_permutation
    from quantized_llms.core import QuantSpec
    dev = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    W16 = (torch.randn(a.rows, a.cols, generator=g) * 0.02).half().to(dev)
    X = torch.randn(a.windows, a.tokens, a.cols, generator=g).half().to(dev)
    out = {}
    for fused in ([True, False] if dev.type == 'cuda' else [False]):
        os.environ['GPTQMODEL_DISABLE_GPTQ_CUDA'] = '' if fused else '1'
        H, seen, Qg = gptqmodel_step(W16, X, dev)
        out[f'gptqmodel fused={fused}'] = Qg
    spec = QuantSpec(4, True, 'per_group', 128)
    perm = gar_permutation(torch.diag(H), 128)
    Ho = H[perm][:, perm].clone()
    rep = dict(device=str(dev), shape=[a.rows, a.cols], H_ordered_equal=bool(torch.equal(Ho, seen['H_ordered'])))
    Hd = Ho.clone(); Hd[range(a.cols), range(a.cols)] += 0.01 * torch.mean(torch.diag(Hd))
    L = torch.linalg.cholesky(Hd)
    X_inv = torch.cholesky_inverse(L)
    ours_hinv = torch.linalg.cholesky(X_inv, upper=True)
    rep['cholesky_inverse_symmetric'] = bool(torch.equal(X_inv, X_inv.T))
    rep['Hinv_ours_vs_gptqmodel_equal'] = bool(torch.equal(ours_hinv, seen['Hinv']))
    rep['Hinv_max_abs_diff'] = float((ours_hinv - seen['Hinv']).abs().max())
    kernels = ['torch'] + (['triton'] if dev.type == 'cuda' else [])
    for k in kernels:
        out[f'ours kernel={k}'] = gptq_quantize_weight(W16.float(), H, spec, damp_percent=0.01, kernel=k)[0].half()
    names = list(out)
    ref = out[names[0]]
    for n in names[1:]:
        rep[f'{n} vs {names[0]}: weights differing'] = int((out[n] != ref).sum())
    for i, n in enumerate(names):
        for m in names[i + 1:]:
            rep[f'{n} == {m}'] = bool(torch.equal(out[n], out[m]))
    print(json.dumps(rep, indent=1))

if __name__ == '__main__':
    main()
