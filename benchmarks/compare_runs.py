"""Two runs of the same configuration side by side (e.g. the main job on the CPU and on a GPU): perplexity, KLD and
top-1 per stage and variant, whether the model files are the same bytes, the lm-eval scores of each benchmark variant,
and each stage's time and peak memory.

    python benchmarks/compare_runs.py results/SmolLM2-135M-Instruct results/SmolLM2-135M-Instruct/gpu --out results/SmolLM2-135M-Instruct/gpu/compare.md
"""
import argparse, json, sys
from pathlib import Path

def load(d: Path, name: str):
    p = d/f'{name}.json'
    return json.loads(p.read_text()) if p.is_file() else None

def where(rec) -> str:
    m = rec['meta']
    return f"{m['device']}, torch {m['versions'].get('torch')}"

def rows(a: Path, b: Path) -> list:
    out = []
    def add(stage, variant, ra, rb, same_file=None):
        pa, pb = ra.get('ppl'), rb.get('ppl')
        out.append(dict(stage=stage, variant=variant, ppl_A=round(pa, 4), ppl_B=round(pb, 4),
                        ppl_change=f"{(pb / pa - 1) * 100:+.3f}%",
                        KLD_A=round(ra['kld_mean'], 5) if ra.get('kld_mean') is not None else None,
                        KLD_B=round(rb['kld_mean'], 5) if rb.get('kld_mean') is not None else None,
                        same_file={True: 'yes', False: 'no', None: ''}[same_file]))
    ba, bb = load(a, 'baseline'), load(b, 'baseline')
    if ba and bb: add('baseline', f"{ba['variant']} / {bb['variant']}", ba['perplexity'], bb['perplexity'])
    qa, qb = load(a, 'quantize'), load(b, 'quantize')
    if qa and qb:
        for pos in qa['positions']:
            if pos in qb['positions'] and pos != 'pretrain':
                same = None
                if pos == 'real': same = qa['outputs']['real']['digest'] == qb['outputs']['real']['digest']
                add('quantize', f"{qa['method_title']} {pos}", qa['positions'][pos], qb['positions'][pos], same)
    ga, gb = load(a, 'gguf'), load(b, 'gguf')
    if ga and gb:
        for k, r in ga['results'].items():
            if k in gb['results'] and k != 'reference':
                add('gguf', f'GGUF {k}', r, gb['results'][k], ga['outputs'][k]['digest'] == gb['outputs'][k]['digest'])
    return out

def bench_rows(a: Path, b: Path) -> list:
    "Each top-level lm-eval score of every variant both benchmarks ran, with its standard error in each."
    ra, rb = load(a, 'benchmark'), load(b, 'benchmark')
    if not (ra and rb): return []
    if ra['bench'] != rb['bench']:
        raise SystemExit("error: the two benchmark records ran other tasks, limits or generation settings (config bench "
                         "differs): their scores do not compare")
    by_b = {v['variant'] + v.get('key', ''): v for v in rb['variants']}
    out = []
    for va in ra['variants']:
        vb = by_b.get(va['variant'] + va.get('key', ''))
        if vb is None or va.get('error') or vb.get('error'): continue
        sb = {(r['task'], r['metric'], r['filter']): r for r in vb['rows'] if not r.get('in_group')}
        for r in va['rows']:
            if r.get('in_group') or (k := (r['task'], r['metric'], r['filter'])) not in sb: continue
            x, y = r['value'], sb[k]['value']
            out.append(dict(variant=va['label'], task=r['task'], metric=r['metric'], value_A=round(x, 4), stderr_A=round(r['stderr'] or 0, 4),
                            value_B=round(y, 4), stderr_B=round(sb[k]['stderr'] or 0, 4), difference=f"{y - x:+.4f}",
                            speed_tok_s_A=(va.get('efficiency') or {}).get('gen_tokens_per_s'),
                            speed_tok_s_B=(vb.get('efficiency') or {}).get('gen_tokens_per_s')))
    return out

def resources(a: Path, b: Path) -> list:
    ra, rb = [json.loads((d/'resources.json').read_text()) if (d/'resources.json').is_file() else {} for d in (a, b)]
    gib = lambda x: round(x / 2**30, 2) if x else None
    return [dict(stage=s, seconds_A=round(ra[s]['seconds']), seconds_B=round(rb[s]['seconds']) if s in rb else None,
                 peak_RSS_GiB_A=gib(ra[s]['peak_rss_bytes']), peak_RSS_GiB_B=gib(rb.get(s, {}).get('peak_rss_bytes')),
                 peak_GPU_GiB_B=gib(rb.get(s, {}).get('peak_cuda_bytes'))) for s in ra]

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('a'); ap.add_argument('b'); ap.add_argument('--out')
    args = ap.parse_args()
    from quantized_llms.core import markdown_table, atomic_write_text
    a, b = Path(args.a), Path(args.b)
    for name in ('baseline', 'quantize', 'gguf'):
        ra, rb = load(a, name), load(b, name)
        if ra and rb and any(ra['config'][k] != rb['config'][k] for k in ('eval', 'calib')):
            raise SystemExit(f"error: the two {name} records were scored on other windows or calibrated on other data "
                             f"(config eval/calib differ): their numbers do not compare")
    first = next(load(d, s) for s in ('baseline', 'quantize', 'gguf') for d in (a,) if load(d, s))
    second = next(load(d, s) for s in ('baseline', 'quantize', 'gguf') for d in (b,) if load(d, s))
    md = (f"# {a} (A) and {b} (B)\n\nA: {where(first)}. B: {where(second)}. Same windows and calibration in both; "
          f"`same_file` compares the SHA-256 of the model file each run wrote.\n\n" + markdown_table(rows(a, b)) +
          (f"\n## lm-eval scores per benchmark variant\n\n{markdown_table(br)}\n`speed_tok_s` is the variant's generation "
           "speed at batch 1 (tokens/s) as the benchmark stage measured it.\n" if (br := bench_rows(a, b)) else '') +
          "\n## Time and peak memory per stage\n\n" + markdown_table(resources(a, b)) +
          f"\nProduced by `python benchmarks/compare_runs.py {' '.join(sys.argv[1:])}`.\n")
    if args.out: atomic_write_text(args.out, md)
    print(md)

if __name__ == '__main__': main()
