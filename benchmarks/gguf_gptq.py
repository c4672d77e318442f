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
import argparse, json, shutil, sys, time
from pathlib import Path
import numpy as np
import torch

# (bytes per block of 32, offset of the codes' zero, largest code): one float16 scale first in every block
GRIDS = {'Q4_0': (18, 8, 15), 'Q5_0': (22, 16, 31), 'Q8_0': (34, 128, 255)}

def block_scales(data: np.ndarray, ggml_type: str, rows: int) -> torch.Tensor:
    "The float16 scale of each block of 32 of a Q4_0/Q5_0/Q8_0 tensor's raw bytes, as rows x blocks (float32)."
    size = GRIDS[ggml_type][0]
    raw = np.ascontiguousarray(data).reshape(rows, -1, size)
    return torch.from_numpy(np.ascontiguousarray(raw[..., :2]).view(np.float16)[..., 0].astype(np.float32))

def pack_blocks(codes: np.ndarray, scales: np.ndarray, ggml_type: str) -> np.ndarray:
    """Raw GGUF bytes of `codes` (rows x cols, 0..largest code) on `scales` (rows x blocks, float16 values), in ggml's
    layout (gguf-py's `quantize_blocks` writes the same bytes for the codes it picks)."""
    q = codes.reshape(-1, 32).astype(np.uint8)
    d = scales.reshape(-1, 1).astype(np.float16).view(np.uint8)
    if ggml_type == 'Q8_0': body = [(q.astype(np.int16) - 128).astype(np.int8).view(np.uint8)]
    else:
        qs = (q[:, :16] & np.uint8(0x0F)) | ((q[:, 16:] & np.uint8(0x0F)) << np.uint8(4))
        body = [np.packbits(q >> np.uint8(4), axis=-1, bitorder='little').reshape(-1, 4), qs] if ggml_type == 'Q5_0' else [qs]
    return np.concatenate([d, *body], axis=-1).reshape(codes.shape[0], -1)

def file_row_order(W_file: torch.Tensor, W: torch.Tensor):
    """For each row of a GGUF tensor, the row of the model's weight it holds: the identity, or the converter's own
    permutation (llama.cpp reorders Llama's q and k rows for its rope layout), found as each file row's nearest model
    row; None where that is not one-to-one."""
    if torch.linalg.norm(W_file - W) <= 0.5 * torch.linalg.norm(W): return torch.arange(W.shape[0])
    order = torch.cdist(W_file, W).argmin(1)
    return order if len(torch.unique(order)) == len(order) else None

def check_packing():
    "Our packing against gguf-py's on random blocks: the codes and scales its own quantizer picks give its bytes."
    import gguf
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    for t, (size, zero, _) in GRIDS.items():
        ref = gguf.quants.quantize(x, getattr(gguf.GGMLQuantizationType, t))
        d = block_scales(ref, t, 8).numpy()
        deq = gguf.quants.dequantize(ref, getattr(gguf.GGMLQuantizationType, t))
        with np.errstate(divide='ignore', invalid='ignore'):
            codes = np.where(np.repeat(d, 32, 1) == 0, zero, np.rint(deq / np.repeat(d, 32, 1)) + zero)
        assert np.array_equal(pack_blocks(codes, d, t), ref), t

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
    from quantized_llms.core import RunConfig, QuantSpec, atomic_write_json, atomic_write_text, run_metadata
    from quantized_llms.runs import Run
    from quantized_llms.models import load_from_config
    from quantized_llms.algorithm import Algorithm
    from quantized_llms.blocks import block_linears
    from quantized_llms.engine import quantize_model
    from quantized_llms.algorithms.gptq import accumulate_hessian, gptq_quantize_weight
    from quantized_llms.gguf import gguf_tensor_names, LazyGGUF
    from quantized_llms.llamacpp import gguf_reader, gguf_info
    from quantized_llms.perplexity import compare_to_reference, tokens_per_chunk
    import gguf
    check_packing()
    run_dir, out = Path(args.run), Path(args.out); out.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig.from_yaml(run_dir/'config.yaml')
    src = Path(json.loads((run_dir/'gguf.json').read_text())['files'][args.file])
    lay = Run.of(cfg)
    model, _ = load_from_config(cfg.model)
    names = gguf_tensor_names(model, gguf_info(src)['architecture'])
    tensors = {t.name: t for t in gguf_reader(src).tensors}
    new_codes, losses, by_module = {}, [], {}

    class GGUFGridGPTQ(Algorithm):
        "GPTQ on the block scales of a GGUF file's Q4_0/Q5_0/Q8_0 tensors; the file's own rounding for the others."
        needs_hessian = True
        def calibrate_block(self, block, hidden, kwargs):
            for name, lin in block_linears(block).items():
                g = by_module.get(id(lin))
                if g is None: continue
                t = tensors[g]; kind = t.tensor_type.name
                rows, cols = lin.weight.shape
                W_file = torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type).reshape(rows, cols).astype(np.float32))
                order = file_row_order(W_file, lin.weight.float())
                if order is None: raise SystemExit(f"error: {g}'s rows do not match the model's weight one to one")
                W_file = W_file[torch.argsort(order)]                      # in the model's row order from here on
                if kind not in GRIDS:
                    lin.weight.copy_(W_file.to(lin.weight.dtype)); continue
                H = accumulate_hessian(block, name, hidden, kwargs)
                S = block_scales(t.data, kind, rows)[torch.argsort(order)]  # rows x blocks
                zero, maxq = GRIDS[kind][1:]
                Q, _ = gptq_quantize_weight(lin.weight.float(), H, QuantSpec(int(np.log2(maxq + 1)), True, 'per_group', 32),
                                            args.damp, order='desc_act', fixed_grid=(S.T, torch.full_like(S.T, zero)))
                Sx = S.repeat_interleave(32, 1)
                codes = torch.where(Sx == 0, torch.tensor(float(zero)), torch.round(Q / Sx) + zero)
                assert codes.min() >= 0 and codes.max() <= maxq
                W = lin.weight.float()
                err = lambda A: float(torch.einsum('ij,jk,ik->', W - A, H, W - A))     # the layer's output error, tr(E H Eᵀ)
                losses.append(dict(tensor=g, type=kind, file_error=err(W_file), gptq_error=err(Q)))
                new_codes[g] = (codes[order].numpy(), S[order].numpy())    # back in the file's row order
                lin.weight.copy_(Q.to(lin.weight.dtype))
            return {}
    GGUFGridGPTQ.name = 'gguf_grid_gptq'        # named after the class is made: not a registered method

    t0 = time.time()
    work, _ = load_from_config(cfg.model)       # the copy the rounding goes into; `model` stays the reference
    by_module.update({id(work.get_submodule(m)): g for m, g in names.items()})
    quantize_model(work, lay.calib, GGUFGridGPTQ(), batch_size=cfg.calib.batch_size)
    seconds = round(time.time() - t0, 1)
    dst = Path(cfg.save.output_dir)/'gguf_gptq'/src.name.replace(args.file, f'{args.file}-GPTQ'); dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + '.tmp-write'); shutil.copyfile(src, tmp)
    with open(tmp, 'r+b') as f:
        for g, (codes, scales) in new_codes.items():
            raw = pack_blocks(codes, scales, tensors[g].tensor_type.name)
            assert raw.nbytes == tensors[g].n_bytes, g
            f.seek(int(tensors[g].data_offset)); f.write(raw.tobytes())
    tmp.replace(dst)
    back = {t.name: t for t in gguf_reader(dst).tensors}
    for g in list(new_codes)[:3]:       # what llama.cpp will read is what GPTQ rounded to
        t = back[g]; codes, scales = new_codes[g]
        deq = gguf.quants.dequantize(t.data, t.tensor_type).reshape(codes.shape)
        assert np.allclose(deq, (codes - GRIDS[t.tensor_type.name][1]) * np.repeat(scales.astype(np.float16).astype(np.float32), 32, 1), atol=0), g
    windows, chunk = lay.windows, tokens_per_chunk(len(lay.tokenizer))
    files = {args.file: src, f'{args.file}-GPTQ': dst}
    lazy = {k: LazyGGUF(p, n_ctx=cfg.eval.seq_len, n_batch=chunk) for k, p in files.items()}
    try: cmp = compare_to_reference(model, lazy, windows, chunk)
    finally:
        for m in lazy.values(): m.close()
    fe, ge = sum(l['file_error'] for l in losses), sum(l['gptq_error'] for l in losses)
    record = dict(run=str(run_dir), file=args.file, source=str(src), written=str(dst), bytes={k: p.stat().st_size for k, p in files.items()},
                  tensors_rerounded=len(new_codes), types=sorted({l['type'] for l in losses}), damp=args.damp, seconds=seconds,
                  calib=dict(name=cfg.calib.name, n_samples=cfg.calib.n_samples, seq_len=cfg.calib.seq_len, seed=cfg.calib.seed),
                  windows=len(windows), results=cmp, layer_error=dict(file=fe, gptq=ge), tensors=losses,
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
