"""Does a packed GPTQ checkpoint load in GPTQModel and in transformers, and do they compute what our reader reads?

Loads the checkpoint three ways on the CPU (our reader's float32 dequantized weights, GPTQModel's kernel, transformers'
GPTQ integration through optimum), runs the first 256 tokens of the offline prose test text, and writes, per loader,
the kernel classes, the group sizes and bit widths its modules took, and the KL divergence and top-1 agreement of
its next-token distributions against our reader's (the kernels compute in bfloat16 on a CPU, so a small divergence
is expected: compare with a checkpoint on one grid). A loader that refuses is recorded with its message.

    python benchmarks/load_check.py outputs/w4-dynamic/awq-gptq-mixed/SmolLM2-135M-Instruct-AWQ-GPTQ-4bit-g32-asym \
        --out results/SmolLM2-135M-Instruct/w4-dynamic/load_check.md
"""
import argparse, sys, time
from pathlib import Path

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('checkpoint'); ap.add_argument('--out', required=True); ap.add_argument('--tokens', type=int, default=256)
    args = ap.parse_args()
    import torch
    from quantized_llms.core import atomic_write_text, markdown_table, run_metadata
    from quantized_llms.gptq_format import load_gptq, load_gptq_dequantized, load_gptq_transformers, weights_digest
    from quantized_llms.data import load_text, tokenize_text
    ref, tok = load_gptq_dequantized(args.checkpoint)
    ids = tokenize_text(tok, load_text('offline-prose', 'test'))[:args.tokens][None]
    with torch.no_grad(): lr = torch.log_softmax(ref(ids).logits.float(), -1)
    rows = []
    for name, loader in (('GPTQModel', load_gptq), ('transformers (optimum)', load_gptq_transformers)):
        t0 = time.time()
        try: m, _ = loader(args.checkpoint, 'cpu')
        except Exception as e:
            rows.append(dict(loader=name, loads='no: ' + str(e).split('\n')[0][:200])); continue
        with torch.no_grad(): lm = torch.log_softmax(m(ids).logits.float(), -1)
        q = [x for x in m.modules() if hasattr(x, 'qweight')]
        rows.append(dict(loader=name, loads=f'yes ({time.time() - t0:.0f} s)', kernels=', '.join(sorted({type(x).__name__ for x in q})),
                         group_sizes=', '.join(map(str, sorted({x.group_size for x in q}))), bits=', '.join(map(str, sorted({x.bits for x in q}))),
                         KL_vs_reader=f"{(lr.exp() * (lr - lm)).sum(-1).mean().item():.2e}",
                         top1_same=f"{(lr.argmax(-1) == lm.argmax(-1)).float().mean().item():.2%}"))
    command = 'python benchmarks/load_check.py ' + ' '.join(sys.argv[1:])
    meta = run_metadata(command)
    digest = weights_digest(args.checkpoint)
    text = (f"# Loading `{Path(args.checkpoint).name}`\n\nWeights: " + ', '.join(f"{k} {v[0]} bytes (sha256 {v[1][:12]}...)" for k, v in digest.items())
            + f". Each loader against our reader's float32 dequantized weights on {ids.shape[1]} tokens of offline-prose "
            f"(test), on the CPU.\n\n" + markdown_table(rows)
            + f"\n\nProduced by `{command}` on {meta['machine']['cpu']}, {meta['time_utc']}.\n")
    atomic_write_text(Path(args.out), text); print(text)

if __name__ == '__main__': sys.exit(main())
