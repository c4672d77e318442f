"""Compare weight and weight-activation quantization algorithms on one model, on the same data (seeds 002/003).

    python benchmarks/compare_algorithms.py --model smollm2-135m --max-windows 8

Every method runs through quantized_llms.blockwise on the same calibration windows (the pipeline's GPTQ calibration:
offline-prose train, 128 x 512 tokens, seed 42) and is measured on the same evaluation windows against the same
full-precision log-probabilities (perplexity, KL divergence, top-1 agreement). GPTQModel's checkpoint from the GPTQ stage
(outputs/<model>-GPTQ), read back as float32, is measured alongside when present. Writes algorithms.{json,md,png}.
With --append, the rows of an earlier run with the same model, calibration and evaluation windows are kept and the
methods named are added (or replace rows of the same name); each row records the command that produced it.
"""
import argparse, copy, math, os, sys
from pathlib import Path
import torch
from tqdm.auto import tqdm
from quantized_llms.core import Measure, markdown_table, read_result, write_result
from quantized_llms.models import load_model, resolve_model
from quantized_llms.data import load_text, tokenize_text, calibration_windows
from quantized_llms.perplexity import eval_windows, token_kl, kld_summary
from quantized_llms.quantizers import QuantSpec, RTN
from quantized_llms.blockwise import GPTQ, AWQ, SmoothQuant, quantize_model

W4 = QuantSpec(4, True, 'per_group', 128)
W4_ASYM = QuantSpec(4, False, 'per_group', 128)      # AWQ's own default (zero point per group)
GPTQMODEL_ROW = 'GPTQ (INT4-g128), GPTQModel 7.7.0'
W8, A8 = QuantSpec(8, True, 'per_channel'), QuantSpec(8, True, 'per_token')

@torch.no_grad()
def reference_logprobs(model, windows):
    return [torch.log_softmax(model(w[None]).logits[0, :-1].float(), -1) for w in tqdm(windows, desc='FP log-probs', leave=False)]

@torch.no_grad()
def measure(model, windows, ref):
    "Perplexity, KLD and top-1 agreement against the stored FP log-probs, on the same windows."
    nll, n, klds, matches = 0.0, 0, [], []
    for w, lp_ref in zip(tqdm(windows, desc='eval', leave=False), ref):
        lp = torch.log_softmax(model(w[None]).logits[0, :-1].float(), -1)
        nll -= lp.gather(-1, w[1:, None]).sum().item(); n += w.numel() - 1
        kl, match = token_kl(lp_ref, lp)
        klds.append(kl); matches.append(match)
    return dict(ppl=math.exp(nll / n), **kld_summary(klds, matches))   # kld_summary counts the tokens

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default='smollm2-135m'); ap.add_argument('--max-windows', type=int, default=8)
    ap.add_argument('--seq-len', type=int, default=2048); ap.add_argument('--n-samples', type=int, default=128)
    ap.add_argument('--calib-len', type=int, default=512); ap.add_argument('--methods', default='rtn-w4,gptq-w4,awq-w4,rtn-w8a8,sq-w8a8,gptqmodel-w4')
    ap.add_argument('--outputs', default='outputs'); ap.add_argument('--results-dir', default='results')
    ap.add_argument('--append', action='store_true', help='keep the rows of an earlier run with the same settings')
    a = ap.parse_args()
    command = 'python benchmarks/compare_algorithms.py ' + ' '.join(sys.argv[1:])
    methods = {
        'rtn-w4': ('RTN (INT4-g128)', lambda: RTN(weight=W4)),
        'gptq-w4': ('GPTQ (INT4-g128), ours', lambda: GPTQ(weight=W4)),
        'awq-w4': ('AWQ (INT4-g128)', lambda: AWQ(weight=W4, transform_only=True)),
        'rtn-w4-asym': ('RTN (INT4-g128, asymmetric)', lambda: RTN(weight=W4_ASYM)),
        'awq-w4-asym': ("AWQ (INT4-g128, asymmetric: AWQ's default)", lambda: AWQ(weight=W4_ASYM, transform_only=True)),
        'rtn-w8a8': ('RTN (W8A8)', lambda: RTN(weight=W8, act=A8)),
        'sq-w8a8': ('SmoothQuant (W8A8, alpha 0.5)', lambda: SmoothQuant(transform_only=True)),
    }
    names = {k: v[0] for k, v in methods.items()} | {'gptqmodel-w4': GPTQMODEL_ROW}
    unknown = [k for k in a.methods.split(',') if k not in names]
    if unknown: sys.exit(f"unknown methods {unknown}; available: {', '.join(names)}")
    torch.manual_seed(0)
    label = resolve_model(a.model).label
    fp, tok = load_model(a.model, device='cpu')
    calib = calibration_windows(tokenize_text(tok, load_text('offline-prose', 'train')), a.n_samples, a.calib_len, 42)
    windows = eval_windows(tokenize_text(tok, load_text('offline-prose', 'test')), a.seq_len, a.max_windows)
    out = Path(a.results_dir)/label
    header = dict(model=a.model, label=label, eval=dict(dataset='offline-prose', split='test', seq_len=a.seq_len,
                  windows=len(windows), tokens=sum(w.numel() - 1 for w in windows)), calib=dict(dataset='offline-prose',
                  split='train', n_samples=a.n_samples, seq_len=a.calib_len, seed=42))
    kept = []   # checked before the reference log-probabilities are computed: a mismatch stops at once
    if a.append and (old := read_result(out, 'algorithms')):
        if any(old[k] != header[k] for k in ('model', 'eval', 'calib')):
            sys.exit(f"--append: {out/'algorithms.json'} was made with other settings ({ {k: old[k] for k in ('model', 'eval', 'calib')} }); "
                     "run without --append, or with the same --max-windows/--seq-len/--n-samples/--calib-len")
        redo = {names[k] for k in a.methods.split(',')}
        kept = [{**r, 'command': r.get('command', old['meta']['command'])} for r in old['rows'][1:] if r['method'] not in redo]
    ref = reference_logprobs(fp, windows)
    rows = [dict(method='FP32', position='pretrain', **measure(fp, windows, ref), calib_seconds=0.0, peak_rss_GiB=None, command=command)]
    assert rows[0]['n_tokens'] == header['eval']['tokens'], (rows[0]['n_tokens'], header['eval']['tokens'])
    print(rows[-1], flush=True)
    rows += kept

    def write_all():
        record = dict(**header, rows=rows)
        fq = [r for r in rows if r['position'] != 'transformed']
        seed_rows = [{'PPL': r['method'], label: round(r['ppl'], 2)} for r in fq]
        detail = [dict(method=r['method'], position=r['position'], perplexity=round(r['ppl'], 4), kld_mean=round(r['kld_mean'], 5),
                       top1=f"{100 * r['top1_agreement']:.2f}%", calib_s=r['calib_seconds'], peak_RSS_GiB=r['peak_rss_GiB']) for r in rows]
        md = (f"# {label}: quantization algorithms on the same data\n\nPerplexity on offline-prose test, {len(windows)} windows of "
              f"{a.seq_len} tokens ({rows[0]['n_tokens']} scored tokens); every method calibrated on the same {a.n_samples} x "
              f"{a.calib_len} offline-prose train tokens (seed 42), with the same grid (INT4: symmetric unless the row says "
              f"asymmetric, groups of 128; W8A8: weights per channel, activations per token, dynamic). KLD and top-1 are against the FP32 model's next-token "
              f"distribution on the same tokens. Peak RSS is the whole process's, which also holds the FP32 reference "
              f"log-probabilities ({len(windows)} x {a.seq_len} x vocabulary floats).\n\n" + markdown_table(seed_rows, floatfmt='.2f') + "\n## Details (llmc eval positions)\n\n"
              + markdown_table(detail) + "\n![perplexity by method](algorithms.png)\n"
              + "\n## Commands\n" + "".join(f"\n- {m}: `{c}`" for m, c in dict.fromkeys((r['method'], r['command']) for r in rows[1:])) + "\n")
        import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.barh([r['method'] for r in fq][::-1], [r['ppl'] for r in fq][::-1], color='tab:blue')
        ax.axvline(rows[0]['ppl'], color='k', ls='--', lw=1, label='FP32'); ax.set_xlabel('perplexity (lower is better)')
        ax.set_title(f'{label}: algorithms on the same windows'); ax.legend(); fig.tight_layout()
        out.mkdir(parents=True, exist_ok=True); tmp = out/'.algorithms.tmp.png'; fig.savefig(tmp, dpi=120); os.replace(tmp, out/'algorithms.png')
        write_result(out, 'algorithms', record, md, command)
        print(md, flush=True)

    for key in a.methods.split(','):
        if key == 'gptqmodel-w4':
            from quantized_llms.gptq import is_gptq_checkpoint, load_gptq_dequantized
            p = Path(a.outputs)/f'{label}-GPTQ'
            if not is_gptq_checkpoint(p): print(f'skip gptqmodel-w4: no checkpoint at {p}'); continue
            rec = read_result(out, 'gptq')
            q, _ = load_gptq_dequantized(p)
            rows.append(dict(method=GPTQMODEL_ROW, position='fake_quant (checkpoint read back)',
                             **measure(q, windows, ref), calib_seconds=rec['run']['quant_seconds'],
                             peak_rss_GiB=round(rec['run']['peak_rss_bytes'] / 2**30, 2), command=command))
            print(rows[-1], flush=True); del q; write_all(); continue
        name, make = methods[key]
        m, alg = copy.deepcopy(fp), make()
        data = calib[:1] if isinstance(alg, RTN) else calib    # RTN reads no data: one window only drives the engine
        with Measure() as meas: quantize_model(m, data, alg)
        cost = dict(calib_seconds=round(meas.seconds, 1), peak_rss_GiB=round(meas.peak_rss_bytes / 2**30, 2), command=command)
        if getattr(alg, 'transform_only', False):      # llmc's `transformed` position, then round
            rows.append(dict(method=name, position='transformed', **measure(m, windows, ref), **cost))
            print(rows[-1], flush=True)
            alg.quantize_weights(m)
        rows.append(dict(method=name, position='fake_quant', **measure(m, windows, ref), **cost))
        print(rows[-1], flush=True)
        del m; write_all()


if __name__ == '__main__': main()
