"""Is SmolLM2-135M's GPTQ perplexity increase GPTQ's doing or the model's? Compare, on the same windows:
the original in float32 and bfloat16, round-to-nearest W4 g128 with GPTQ's symmetric grid (what GPTQ improves on),
and the GPTQ checkpoint read back as float32 and bfloat16 (isolating the kernels' half precision).

    python benchmarks/gptq_diagnosis.py outputs/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct-GPTQ --windows 8
"""
import argparse, copy, sys
from pathlib import Path
from quantized_llms.core import markdown_table, write_result, QuantSpec
from quantized_llms.models import load_model
from quantized_llms.gptq_format import load_gptq_dequantized
from quantized_llms.data import load_text, tokenize_text
from quantized_llms.perplexity import perplexity
from quantized_llms.quantizers import round_model

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('gptq_dir'); ap.add_argument('--windows', type=int, default=8)
    ap.add_argument('--results-dir', default='results/SmolLM2-135M-Instruct')
    a = ap.parse_args()
    fp, tok = load_model('smollm2-135m')
    ids = tokenize_text(tok, load_text('offline-prose', 'test'))
    ppl = lambda m: perplexity(m, ids, 2048, max_windows=a.windows, progress=False).ppl
    rows = [dict(variant='original float32', perplexity=ppl(fp)), dict(variant='original bfloat16', perplexity=ppl(copy.deepcopy(fp).bfloat16()))]
    rtn = copy.deepcopy(fp)
    round_model(rtn, QuantSpec(4, sym=True, granularity='per_group', group_size=128))   # RTN on GPTQ's symmetric grid
    rows.append(dict(variant='RTN W4 g128 float32', perplexity=ppl(rtn))); del rtn
    g, _ = load_gptq_dequantized(a.gptq_dir)
    rows.append(dict(variant='GPTQ W4 g128 read back as float32', perplexity=ppl(g)))
    rows.append(dict(variant='GPTQ W4 g128 read back as bfloat16', perplexity=ppl(g.bfloat16())))
    base = rows[0]['perplexity']
    for r in rows: r['vs_original'] = f"{100 * (r['perplexity'] / base - 1):+.1f}%"
    md = (f"# SmolLM2-135M-Instruct: where GPTQ's perplexity increase comes from\n\nFirst {a.windows} windows of 2048 tokens "
          f"of offline-prose test.\n\n" + markdown_table(rows))
    write_result(a.results_dir, 'gptq_diagnosis', dict(windows=a.windows, rows=rows), md,
                 'python benchmarks/gptq_diagnosis.py ' + ' '.join(sys.argv[1:]))
    print(md)

if __name__ == '__main__': main()
