"""Peak memory of `compare_to_reference` on a tiny Llama with Gemma 3's 262,144-token vocabulary: one 2048-token
window, the reference and one variant. With `--code DIR` the comparison comes from another checkout's
`quantized_llms/perplexity.py` (e.g. a `git worktree` of an older commit), to measure before and after.

    python benchmarks/compare_memory.py                      # this checkout
    python benchmarks/compare_memory.py --code /tmp/oldcode  # another checkout's comparison
"""
import argparse, importlib.util, sys
import torch
from quantized_llms.core import Measure
from quantized_llms.models import tiny_model

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--code', help="a checkout whose quantized_llms/perplexity.py to measure instead of this one's")
    ap.add_argument('--vocab', type=int, default=262144)
    a = ap.parse_args()
    if a.code:
        path = f'{a.code}/quantized_llms/perplexity.py'
        src = open(path).read().replace('from .core', 'from quantized_llms.core')
        mod = type(sys)('other_perplexity'); sys.modules['other_perplexity'] = mod
        exec(compile(src, path, 'exec'), mod.__dict__)
    else:
        import quantized_llms.perplexity as mod
    ref = tiny_model('llama', vocab_size=a.vocab, max_position_embeddings=2048)
    var = tiny_model('llama', vocab_size=a.vocab, max_position_embeddings=2048, seed=1)
    w = torch.randint(0, a.vocab, (1, 2048), generator=torch.Generator().manual_seed(0))
    with Measure() as before: pass
    with Measure() as m: r = mod.compare_to_reference(ref, {'q': var}, w, progress=False)
    print(f"{a.code or 'this checkout'}: {before.peak_rss_bytes / 2**30:.2f} GiB with the models, peak in the comparison "
          f"{m.peak_rss_bytes / 2**30:.2f} GiB (+{(m.peak_rss_bytes - before.peak_rss_bytes) / 2**30:.2f}), {m.seconds:.1f} s, "
          f"KLD {r['q']['kld_mean']:.6f}, perplexity {r['q']['ppl']:.2f}")

if __name__ == '__main__': main()
