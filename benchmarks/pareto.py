"""Quality against size over quantize- and GGUF-stage results measured on the same windows: a table and a Pareto plot
(KLD and perplexity against the bytes each model file really costs), with the frontier marked.

Each argument is a results folder of one run (its `quantize.json` and/or `gguf.json`). Sizes: a GGUF file as it is;
a packed GPTQ checkpoint with its unquantized tensors (embeddings, norms, the output head) counted at 16 bits, since
a checkpoint saved from a float32 model on a CPU holds them in float32 (`file_MiB` is the file as written).

    python benchmarks/pareto.py results/SmolLM2-135M-Instruct/imatrix/* results/SmolLM2-135M-Instruct/gptq-options/runs/*/results/gptq-options --out results/SmolLM2-135M-Instruct
"""
import argparse, json, struct, sys
from pathlib import Path

def safetensors_bytes_16bit(folder: Path) -> int:
    "Bytes of a checkpoint's weights with every floating-point tensor at 2 bytes a value (integer tensors as stored)."
    total = 0
    for f in sorted(folder.glob('*.safetensors')):
        with open(f, 'rb') as fh:
            n = struct.unpack('<Q', fh.read(8))[0]; header = json.loads(fh.read(n))
        for k, t in header.items():
            if k == '__metadata__': continue
            size = t['data_offsets'][1] - t['data_offsets'][0]
            if t['dtype'] == 'F32': size //= 2
            total += size
    return total

def config_estimated_bytes(r: dict) -> int:
    """`methods.estimated_bytes` of a quantize record's method as packed from its model's config alone (a model on the
    meta device, every block linear on the record's grid): for records written before they kept `estimated_bytes`."""
    import torch
    from transformers import AutoModelForCausalLM
    from quantized_llms.core import QuantSpec
    from quantized_llms.models import load_config
    from quantized_llms.methods import estimated_bytes
    from quantized_llms.quantizers import transformer_blocks, block_linears
    spec = QuantSpec(**r['config']['quant']['weight'])
    with torch.device('meta'): model = AutoModelForCausalLM.from_config(load_config(r['config']['model']['name']))
    groups = lambda cols: 1 if spec.granularity != 'per_group' else -(-cols // spec.group_size)
    grids = {lin: {'scale': torch.empty(lin.out_features, groups(lin.in_features), device='meta')}
             for b in transformer_blocks(model) for lin in block_linears(b).values()}
    return estimated_bytes(model, grids, spec)

def rows_of(run: Path) -> list:
    out = []
    q = run/'quantize.json'
    if q.is_file():
        r = json.loads(q.read_text())
        pos = 'real' if 'real' in r['positions'] else 'fake_quant'
        real = (r['outputs'].get('real') or {}).get('path')
        size = safetensors_bytes_16bit(Path(real)) if real and Path(real).is_dir() else None
        estimated = size is None and r.get('estimated_bytes') is not None   # no packed file: what one would cost
        if estimated: size = r['estimated_bytes']
        elif size is None and r['method'] != 'gptqmodel':
            size, estimated = config_estimated_bytes(r), True
        p = r['positions'][pos]
        sp = r['config']['quant'].get('special') or {}
        out.append(dict(model=f"{r['method_title']} {r['scheme']}" + (f" mse {sp['mse']}" if sp.get('mse') and ' mse ' not in r['scheme'] else '')
                             + (' no clip' if sp.get('clip') is False else '') + (' (size estimated)' if estimated else ''),
                        run=run.parent.parent.name if run.parent.name == 'results' else run.name, position=pos, ppl=p['ppl'], kld=p['kld_mean'], top1=p['top1_agreement'],
                        size_bytes=size, file_bytes=(r['outputs'].get('real') or {}).get('bytes'),
                        eval=(r['eval']['dataset'], r['eval']['split'], r['eval']['windows'], r['eval']['seq_len'],
                              r['config']['model']['dtype']),
                        calib_s=r['run']['seconds']))
    g = run/'gguf.json'
    if g.is_file():
        r = json.loads(g.read_text())
        tag = ' + imatrix' if r.get('imatrix') else ''
        for k, p in r['results'].items():
            if k in ('reference', 'F16'): continue
            out.append(dict(model=f'GGUF {k}{tag}', run=run.name, position='gguf', ppl=p['ppl'], kld=p['kld_mean'],
                            top1=p['top1_agreement'], size_bytes=r['bytes'][k], file_bytes=r['bytes'][k],
                            eval=(r['eval_dataset'], r['config']['eval']['split'], r['windows'], r['seq_len'], r['config']['model']['dtype']),
                            calib_s=(r.get('imatrix') or {}).get('seconds', 0.0)))
    return out

def frontier(rows: list, key: str) -> set:
    "Indices of the rows no other row beats on both size and `key` (smaller is better for both)."
    keep = set()
    for i, a in enumerate(rows):
        if not any(b['size_bytes'] <= a['size_bytes'] and b[key] <= a[key] and (b['size_bytes'], b[key]) != (a['size_bytes'], a[key])
                   for b in rows): keep.add(i)
    return keep

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('runs', nargs='+'); ap.add_argument('--out', required=True)
    args = ap.parse_args()
    from quantized_llms.core import atomic_write_json, atomic_write_text, markdown_table, run_metadata
    rows = [r for d in args.runs for r in rows_of(Path(d))]
    evals = {r['eval'] for r in rows}
    if len(evals) != 1: raise SystemExit(f"error: the runs were scored on different windows ({sorted(evals)}): their numbers do not compare")
    sized = sorted((r for r in rows if r['size_bytes']), key=lambda r: r['size_bytes'])
    on_kld = {id(sized[i]) for i in frontier(sized, 'kld')}
    on_ppl = {id(sized[i]) for i in frontier(sized, 'ppl')}
    table = [dict(model=r['model'], size_MiB=f"{r['size_bytes'] / 2**20:.1f}", perplexity=f"{r['ppl']:.4f}",
                  KLD=f"{r['kld']:.4f}", top1=f"{100 * r['top1']:.2f}%", calib_s=f"{r['calib_s'] or 0:.0f}",
                  frontier=('KLD' if id(r) in on_kld else '') + (' PPL' if id(r) in on_ppl else ''), run=r['run']) for r in sized]
    out = Path(args.out)
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(16, 7))
    for ax, key, label, front in ((axes[0], 'kld', 'KLD to the original (lower is better)', on_kld),
                                  (axes[1], 'ppl', 'perplexity (lower is better)', on_ppl)):
        for r in sized:
            ax.scatter(r['size_bytes'] / 2**20, r[key], color='tab:red' if id(r) in front else 'tab:blue', zorder=3)
            ax.annotate(r['model'], (r['size_bytes'] / 2**20, r[key]), textcoords='offset points', xytext=(4, 3), fontsize=7)
        fr = [r for r in sized if id(r) in front]
        ax.plot([r['size_bytes'] / 2**20 for r in fr], [r[key] for r in fr], color='tab:red', lw=1, label='frontier')
        ax.set_xlabel('size (MiB): GGUF as written, GPTQ with unquantized tensors at 16 bits'); ax.set_ylabel(label + ', log scale'); ax.set_yscale('log'); ax.legend(); ax.grid(alpha=.3)
    ds, split, n, sl, _ = next(iter(evals))
    fig.suptitle(f'{n} windows of {sl} tokens of {ds} ({split})'); fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True); tmp = out/'.pareto.tmp.png'; fig.savefig(tmp, dpi=120); plt.close(fig)
    tmp.replace(out/'pareto.png')
    meta = run_metadata('python benchmarks/pareto.py ' + ' '.join(sys.argv[1:]))
    atomic_write_json(out/'pareto.json', dict(rows=rows, meta=meta))
    md = (f"# Quality per byte\n\nEvery row on the same {n} windows of {sl} tokens of {ds} ({split}); KLD and top-1 against "
          f"the original float model. Size: a GGUF file as written; a packed GPTQ checkpoint with its unquantized tensors "
          f"at 16 bits; `(size estimated)`: no packed file exists (16-bit outlier columns, pruned float weights, or a run whose "
          f"packed folder was not kept), and the size is what one would hold, counted by `methods.estimated_bytes` (a "
          f"pruned model stored dense; a rotated model with its untied 16-bit head), from the record or else from the "
          f"model's config. A GGUF file's size includes the types llama.cpp fell back to where rows are not a multiple of 256 "
          f"(its gguf.md lists them). `frontier`: no other row is both smaller and better on that measure.\n\n" + markdown_table(table)
          + f"\n![quality against size](pareto.png)\n\nProduced by `{meta['command']}`, {meta['time_utc']}.\n")
    atomic_write_text(out/'pareto.md', md)
    print(md)

if __name__ == '__main__': main()
