"""Where our GPTQ and GPTQModel part on a GPU: both quantize a 1-layer model of starcoderbase-1b's shape (random fp16
weights, same calibration), the Hessian each builds for every linear is compared, then the packed checkpoints.

    python benchmarks/gptq_gpu_diff.py      # on a CUDA machine with gptqmodel installed
"""
import sys, torch, tempfile
sys.path.insert(0, 'benchmarks'); import engine_speed as es
from pathlib import Path
import gptqmodel.quantization.gptq as G
from quantized_llms import blockwise
rec, ours_H = {}, {}
orig = G.GPTQ.finalize_hessian
def fh(self, *a, **k):
    r = orig(self, *a, **k)
    n = str(getattr(self, 'name', ''))
    if n not in rec and self.H is not None: rec[n] = self.H.detach().float().cpu().clone()
    return r
G.GPTQ.finalize_hessian = fh
oa = blockwise._accumulate_hessian
def ah(block, name, *a, **k):
    H = oa(block, name, *a, **k)
    if name not in ours_H: ours_H[name] = H.detach().cpu().clone()
    return H
blockwise._accumulate_hessian = ah
work = Path(tempfile.mkdtemp())
m, tok, ck, cal = es.build('starcoderbase-1b', work, n_layers=1)
es.ours(m, tok, cal, work/'o', 'cuda')
es.gptqmodel(m, tok, ck, cal, work/'g', 'cuda')
print('gptqmodel H:', list(rec)[:6], 'ours H:', list(ours_H))
for n, H in ours_H.items():
    k = [r for r in rec if r.endswith(n)]
    if k:
        R = rec[k[0]]; print(n, 'max|dH|', (H - R).abs().max().item(), 'rel', ((H - R).norm() / R.norm()).item(), 'equal', torch.equal(H, R), 'diag equal', torch.equal(H.diag(), R.diag()))
print(es.compare_packed(work/'o', work/'g'))
