"""Our importance matrix against llama.cpp's own tools, on the GGUF stage's files.

Builds `llama-imatrix` and `llama-perplexity` from the llama-cpp-python sdist with cmake (cached beside the converter,
a few minutes on 2 cores, once), then on the files a GGUF stage run left (`--with`: a run with `gguf.imatrix: true`):

1. runs `llama-imatrix` on the F16 file over the same calibration text (n_samples chunks of seq_len tokens) and
   compares its matrix with ours, tensor by tensor (cosine similarity and relative L2 difference of the column means);
2. scores the F16 file as llama.cpp's KLD base (`llama-perplexity --kl-divergence-base` on the evaluation text,
   chunks of eval.seq_len; llama.cpp scores the second half of each), then each quantized file of the run without the
   matrix (`--without`) and with it: KLD, PPL ratio and same-top-token rate, in llama.cpp's protocol.

    python benchmarks/imatrix_check.py --without results/SmolLM2-135M-Instruct/runs/imatrix-without --with results/SmolLM2-135M-Instruct/runs/imatrix-with
"""
import argparse, json, os, re, subprocess, sys, tarfile, tempfile, time
from pathlib import Path
import numpy as np

def build_tools(names=('llama-imatrix', 'llama-perplexity')) -> Path:
    "A folder holding llama.cpp's tools `names`, built once from the llama-cpp-python sdist of the installed version."
    from quantized_llms.core import cache_root
    from quantized_llms.llamacpp import llama_cpp_version
    ver = llama_cpp_version()
    out = cache_root()/f'llama.cpp-{ver}-tools'
    if all((out/n).is_file() for n in names): return out
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--no-binary', ':all:', '-d', tmp,
                        f'llama-cpp-python=={ver}'], check=True)
        with tarfile.open(next(Path(tmp).glob('*.tar.gz'))) as tf: tf.extractall(tmp, filter='data')
        src = next(Path(tmp).glob('*/vendor/llama.cpp'))
        build = Path(tmp)/'build'
        subprocess.run(['cmake', '-S', str(src), '-B', str(build), '-DCMAKE_BUILD_TYPE=Release', '-DLLAMA_CURL=OFF',
                        '-DLLAMA_BUILD_TESTS=OFF', '-DLLAMA_BUILD_SERVER=OFF', '-DBUILD_SHARED_LIBS=OFF'], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(['cmake', '--build', str(build), '--target', *names, '-j', str(os.cpu_count() or 2)], check=True,
                       stdout=subprocess.DEVNULL)
        out.mkdir(parents=True, exist_ok=True)
        for n in names: os.replace(build/'bin'/n, out/n)
    return out

def run(cmd: list) -> str:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode: raise SystemExit(f"error: {' '.join(map(str, cmd[:2]))} failed: {(r.stderr or r.stdout).strip().splitlines()[-3:]}")
    return r.stdout + r.stderr

def kld_stats(log: str) -> dict:
    grab = lambda pat: float(re.search(pat, log).group(1))
    return dict(kld_mean=grab(r'Mean\s+KLD:\s+(-?[\d.]+)'), ppl_ratio=grab(r'Mean PPL\(Q\)/PPL\(base\)\s+:\s+([\d.]+)'),
                ppl=grab(r'Mean PPL\(Q\)\s+:\s+([\d.]+)'), same_top=grab(r'Same top p:\s+([\d.]+)') / 100)

def compare_matrices(ours: dict, theirs: dict) -> dict:
    common = sorted(set(ours) & set(theirs))
    cos = [float(np.dot(ours[k], theirs[k]) / (np.linalg.norm(ours[k]) * np.linalg.norm(theirs[k]))) for k in common]
    rel = [float(np.linalg.norm(ours[k] - theirs[k]) / np.linalg.norm(theirs[k])) for k in common]
    worst = common[int(np.argmin(cos))]
    return dict(tensors_ours=len(ours), tensors_theirs=len(theirs), common=len(common), cosine_mean=float(np.mean(cos)),
                cosine_min=float(min(cos)), worst=worst, rel_l2_mean=float(np.mean(rel)), rel_l2_max=float(max(rel)))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--without', required=True, help='results folder of a GGUF stage run without the matrix')
    ap.add_argument('--with', dest='with_', required=True, help='results folder of the same run with gguf.imatrix: true')
    ap.add_argument('--out', help='folder for imatrix_check.{json,md} (default: --with)')
    args = ap.parse_args()
    from quantized_llms.core import RunConfig, atomic_write_json, atomic_write_text, markdown_table, run_metadata
    from quantized_llms.data import load_text
    from quantized_llms.llamacpp import read_imatrix
    a, b = (json.loads((Path(d)/'gguf.json').read_text()) for d in (args.without, args.with_))
    if not b.get('imatrix'): raise SystemExit(f"error: {args.with_}/gguf.json was made without gguf.imatrix: true")
    cfg = RunConfig.from_dict(b['config'])
    tools = build_tools()
    work = Path(tempfile.mkdtemp(prefix='imatrix_check-'))
    calib_txt, eval_txt = work/'calib.txt', work/'eval.txt'
    c, e = cfg.calib, cfg.eval
    calib_txt.write_text(load_text(c.name, 'train', c.path, c.text_field if c.path else None))
    eval_txt.write_text(load_text(e.name, e.split, e.path, e.text_field if e.path else None))
    f16, t0 = b['files']['F16'], time.perf_counter()
    run([tools/'llama-imatrix', '-m', f16, '-f', calib_txt, '-c', cfg.calib.seq_len, '--chunks', cfg.calib.n_samples,
         '-o', work/'llama.imatrix.gguf', '-t', os.cpu_count() or 2, '--no-ppl'])
    imatrix_s = time.perf_counter() - t0
    matrices = compare_matrices(read_imatrix(b['imatrix']['path']), read_imatrix(work/'llama.imatrix.gguf'))
    base = work/'f16.kld'
    run([tools/'llama-perplexity', '-m', f16, '-f', eval_txt, '-c', cfg.eval.seq_len, '--chunks', a['windows'],
         '--kl-divergence-base', base, '-t', os.cpu_count() or 2])
    rows = []
    for label, rec in (('without', a), ('with our imatrix', b)):
        for k, path in rec['files'].items():
            if k == 'F16': continue
            s = kld_stats(run([tools/'llama-perplexity', '-m', path, '--kl-divergence-base', base, '--kl-divergence',
                               '-c', cfg.eval.seq_len, '-t', os.cpu_count() or 2]))
            ours = rec['results'][k]
            rows.append(dict(type=k, imatrix=label, llama_KLD=round(s['kld_mean'], 4), llama_PPL_ratio=round(s['ppl_ratio'], 4),
                             llama_same_top=f"{100 * s['same_top']:.1f}%", our_KLD=round(ours['kld_mean'], 4),
                             our_PPL=round(ours['ppl'], 4), our_top1=f"{100 * ours['top1_agreement']:.1f}%",
                             size_MB=round(rec['bytes'][k] / 2**20, 1)))
    rec = dict(matrices=matrices, llama_imatrix_seconds=round(imatrix_s, 1), ours_seconds=b['imatrix']['seconds'],
               rows=rows, meta=run_metadata('python benchmarks/imatrix_check.py ' + ' '.join(sys.argv[1:])))
    out = Path(args.out or args.with_)
    atomic_write_json(out/'imatrix_check.json', rec)
    m = matrices
    md = (f"# Importance matrix: ours against llama.cpp's tools\n\n"
          f"Our matrix (from the transformers model, {b['imatrix']['seconds']:.0f} s) and `llama-imatrix`'s (from the F16 GGUF, "
          f"{imatrix_s:.0f} s), each over {cfg.calib.n_samples} x {cfg.calib.seq_len} tokens of {cfg.calib.path or cfg.calib.name} "
          f"(ours the stage's seeded random windows, llama-imatrix the text's first chunks: the same text, not the same tokens): "
          f"{m['common']} tensors in common (ours {m['tensors_ours']}, theirs {m['tensors_theirs']}); cosine similarity of the "
          f"column means {m['cosine_mean']:.5f} on average, {m['cosine_min']:.5f} at worst ({m['worst']}); relative L2 "
          f"difference {m['rel_l2_mean']:.4f} on average, {m['rel_l2_max']:.4f} at most.\n\n"
          f"Quality of each file two ways. llama.cpp's protocol (`llama-perplexity --kl-divergence` against the F16 file, "
          f"chunks of {cfg.eval.seq_len} tokens of {cfg.eval.path or cfg.eval.name} {cfg.eval.split}, second half of each scored) and "
          f"the GGUF stage's ({a['windows']} windows, every token scored, against the original transformers model):\n\n"
          + markdown_table(rows) + f"\nProduced by `{rec['meta']['command']}` on {rec['meta']['device']}, {rec['meta']['time_utc']}.\n")
    atomic_write_text(out/'imatrix_check.md', md)
    print(md)

if __name__ == '__main__': main()
