"""GPTQ's error compensation inside a GGUF file's own block grids: does it lower the KL divergence at the same bytes?

Takes a GGUF file a GGUF stage run wrote (`--run`: its results folder; `--file`: which of its files, e.g. MIX_Q4_K_M)
and keeps every tensor's type and every block scale llama.cpp chose (with the importance matrix, if the file used
one). For the tensors whose blocks are one scale and signed codes (Q4_0, Q5_0, Q8_0), the codes are chosen again by
GPTQ (act order, static groups, the block scales given: `gptq_quantize_weight(fixed_grid=...)`), block by block
through the model on the run's calibration windows, each block seeing the rounded blocks before it; the other
tensors (k-quants, i-quants, F16) keep llama.cpp's codes, and the blocks after them see those. The new codes are
written into a copy of the file at the same offsets: the same types, the same bytes. Both files are then scored
against the float model on the run's evaluation windows, as the GGUF stage scores its files.

    python benchmarks/gguf_gptq.py --run results/SmolLM2-135M-Instruct/runs/budget-imatrix-True --file MIX_Q4_K_M \
        --out results/SmolLM2-135M-Instruct/gguf_gptq
"""
import argparse, json, sys
from pathlib import Path

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--run', required=True, help='results folder of a GGUF stage run (its config.yaml and gguf.json)')
    ap.add_argument('--file', default='MIX_Q4_K_M', help="the run's file to start from (a key of gguf.json's files)")
    ap.add_argument('--out', required=True, help='folder for gguf_gptq.{json,md} (the new file goes to the run\'s output_dir/gguf_gptq)')
    ap.add_argument('--damp', type=float, default=0.01)
    ap.add_argument('--llama-protocol', action='store_true',
                    help="score the files of the record in --out with llama.cpp's llama-perplexity as well (builds it once)")
    args = ap.parse_args()
    if args.llama_protocol: return llama_protocol(Path(args.out), 'python benchmarks/gguf_gptq.py ' + ' '.join(sys.argv[1:]))
    from quantized_llms.core import RunConfig, atomic_write_json, atomic_write_text, run_metadata
    from quantized_llms.runs import Run
    from quantized_llms.models import load_from_config
    from quantized_llms.gguf import gguf_tensor_names, LazyGGUF
    from quantized_llms.gguf_gptq import gptq_into_gguf
    from quantized_llms.llamacpp import gguf_info
    from quantized_llms.perplexity import compare_to_reference, tokens_per_chunk
    run_dir, out = Path(args.run), Path(args.out); out.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig.from_yaml(run_dir/'config.yaml')
    src = Path(json.loads((run_dir/'gguf.json').read_text())['files'][args.file])
    lay = Run.of(cfg)
    model, _ = load_from_config(cfg.model)       # the reference; the rounding goes into a second copy
    names = gguf_tensor_names(model, gguf_info(src)['architecture'])
    dst = Path(cfg.save.output_dir)/'gguf_gptq'/src.name.replace(args.file, f'{args.file}-GPTQ'); dst.parent.mkdir(parents=True, exist_ok=True)
    done = gptq_into_gguf(load_from_config(cfg.model)[0], lay.calib, src, dst, names, cfg.calib.batch_size, args.damp)
    windows, chunk = lay.windows, tokens_per_chunk(len(lay.tokenizer))
    files = {args.file: src, f'{args.file}-GPTQ': dst}
    lazy = {k: LazyGGUF(p, n_ctx=cfg.eval.seq_len, n_batch=chunk) for k, p in files.items()}
    try: cmp = compare_to_reference(model, lazy, windows, chunk)
    finally:
        for m in lazy.values(): m.close()
    record = dict(run=str(run_dir), file=args.file, source=str(src), written=str(dst), bytes={k: p.stat().st_size for k, p in files.items()},
                  tensors_rerounded=done['tensors_rerounded'], types=done['types'], damp=args.damp, seconds=done['seconds'],
                  calib=dict(name=cfg.calib.name, n_samples=cfg.calib.n_samples, seq_len=cfg.calib.seq_len, seed=cfg.calib.seed),
                  windows=len(windows), results=cmp, layer_error=done['layer_error'], tensors=done['tensors'],
                  command='python benchmarks/gguf_gptq.py ' + ' '.join(sys.argv[1:]),
                  meta=run_metadata('python benchmarks/gguf_gptq.py ' + ' '.join(sys.argv[1:])))
    atomic_write_json(out/'gguf_gptq.json', record)
    atomic_write_text(out/'gguf_gptq.md', markdown(record))
    print(markdown(record))

def llama_protocol(out: Path, command: str):
    """Adds llama.cpp's own scores to the record in `out`: `llama-perplexity --kl-divergence` of each file against the
    run's F16 file (chunks of eval.seq_len, the second half of each scored), as benchmarks/imatrix_check.py does."""
    import os, tempfile
    sys.path.insert(0, str(Path(__file__).parent))
    from imatrix_check import build_tools, run, kld_stats
    from quantized_llms.core import RunConfig, atomic_write_json, atomic_write_text, run_metadata
    from quantized_llms.data import load_text
    record = json.loads((out/'gguf_gptq.json').read_text())
    gg = json.loads((Path(record['run'])/'gguf.json').read_text())
    e = RunConfig.from_yaml(Path(record['run'])/'config.yaml').eval
    tools, work, cores = build_tools(['llama-perplexity']), Path(tempfile.mkdtemp(prefix='gguf_gptq-')), os.cpu_count() or 2
    (work/'eval.txt').write_text(load_text(e.name, e.split, e.path, e.text_field if e.path else None))
    run([tools/'llama-perplexity', '-m', gg['files']['F16'], '-f', work/'eval.txt', '-c', e.seq_len, '--chunks', record['windows'],
         '--kl-divergence-base', work/'f16.kld', '-t', cores])
    files = {record['file']: record['source'], f"{record['file']}-GPTQ": record['written']}
    record['llama_protocol'] = {k: kld_stats(run([tools/'llama-perplexity', '-m', p, '--kl-divergence-base', work/'f16.kld',
                                                  '--kl-divergence', '-c', e.seq_len, '-t', cores])) for k, p in files.items()}
    record['llama_protocol_command'] = command
    record['llama_protocol_meta'] = run_metadata(command)
    atomic_write_json(out/'gguf_gptq.json', record)
    atomic_write_text(out/'gguf_gptq.md', markdown(record))
    print(markdown(record))

def markdown(record: dict) -> str:
    from quantized_llms.core import markdown_table
    cmp, lp, c = record['results'], record.get('llama_protocol', {}), record['calib']
    rows = [dict(file=k, bytes=record['bytes'][k], PPL=f"{cmp[k]['ppl']:.4f}", KLD=f"{cmp[k]['kld_mean']:.5f}",
                 top1=f"{100 * cmp[k]['top1_agreement']:.2f}%",
                 **({'llama.cpp KLD': f"{lp[k]['kld_mean']:.5f}", 'llama.cpp same top': f"{100 * lp[k]['same_top']:.2f}%"} if lp else {}))
            for k in record['bytes']]
    le = record['layer_error']
    return (f"# GPTQ inside a GGUF file's block grids: {record['file']}\n\n{record['tensors_rerounded']} tensors "
            f"({', '.join(record['types'])}) rounded again by GPTQ on the file's own block scales (act order, damp {record['damp']}, "
            f"{c['n_samples']} x {c['seq_len']} tokens of {c['name']}); every other tensor and every byte count as llama.cpp "
            f"wrote them. Summed layer output error tr(E H Eᵀ) over those tensors: llama.cpp's codes {le['file']:.4g}, GPTQ's "
            f"{le['gptq']:.4g}. PPL, KLD and top1: the GGUF stage's protocol ({record['windows']} windows, every token scored, "
            f"against the float model, PPL {cmp['reference']['ppl']:.4f})"
            + (f"; llama.cpp's columns: `llama-perplexity --kl-divergence` against the F16 file, the second half of each "
               f"chunk scored" if lp else '') + ".\n\n" + markdown_table(rows)
            + f"\n\nProduced by `{record['command']}` ({record['seconds']} s of rounding)"
            + (f"; llama.cpp's columns by `{record['llama_protocol_command']}`" if lp else '') + ".\n")

if __name__ == '__main__': sys.exit(main())
