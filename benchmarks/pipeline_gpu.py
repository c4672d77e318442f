"""Every stage of `quantized-llms run` on a model of a published architecture's shape, with random weights, and the
time and peak memory of each stage.

Gated weights cannot be fetched on an offline GPU machine, but what a stage costs depends on the shapes. This builds
`bigcode/starcoderbase-1b`'s (or -3b's) architecture from its published config, saves it as a float16 checkpoint with
SmolLM2's tokenizer (a 49,152-token BPE vocabulary like StarCoder's own, which llama.cpp's converter recognises), and
runs baseline, quantize (GPTQModel), gguf (llama.cpp's StarCoder converter and k-quants), benchmark (lm-eval) and the
publish dry run on it, under a machine profile such as `t4` (float16, GPU memory capped at 15 GiB):

    python benchmarks/pipeline_gpu.py --shape starcoderbase-1b --profile t4 --out results/starcoderbase-1b-shape

It writes `pipeline_gpu.{json,md}` under `--out` (`--stem` names them otherwise). The numbers of quality (perplexity,
lm-eval scores) are those of random weights: only that every stage runs, and what it costs, are measured here.

A standard Colab runtime, as the first seed used it, runs out of host memory before the GPU's: `--profile colab` caps
both (GPU at 14 GiB, a stage's unreclaimable host memory at 11 GiB), and `--cgroup 11` runs the stages, the
converter's subprocess too, inside a memory cgroup of that size, as a machine of that size would hold them (root and a
writable cgroup hierarchy needed; without one the record says the limit was not enforced):

    python benchmarks/pipeline_gpu.py --shape starcoderbase-3b --profile colab --cgroup 11 --stem pipeline_colab --out results/starcoderbase-3b-shape
"""
import argparse, json, shutil, sys, tempfile, time
from typing import Optional
from pathlib import Path
import torch, yaml

sys.path.insert(0, str(Path(__file__).parent))

def build_checkpoint(shape: str, out: Path, tokenizer: str, n_layers=None, device='cpu', tokenizer_vocab: bool = False) -> dict:
    """Save `shape` with random float16 weights (made on `device`: fast on a GPU) and `tokenizer`'s files in `out`; with
    `tokenizer_vocab`, the shape's vocabulary is the tokenizer's size (a shape whose own tokenizer cannot be had offline)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from gptq_speed import SHAPES
    from engine_speed import EXTRA_SHAPES
    from quantized_llms.models import load_tokenizer, save_checkpoint
    kw = dict({**SHAPES, **EXTRA_SHAPES}[shape]); mt = kw.pop('model_type')
    if n_layers: kw['n_layer' if mt == 'gpt_bigcode' else 'num_hidden_layers'] = n_layers
    tok = load_tokenizer(tokenizer)
    if tokenizer_vocab: kw['vocab_size'] = len(tok)
    if len(tok) != kw['vocab_size']:
        raise SystemExit(f"error: tokenizer {tokenizer} has {len(tok)} tokens, the {shape} shape {kw['vocab_size']}: pick one of that size")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(mt, **kw), dtype=torch.float16)
    save_checkpoint(model.cpu() if device != 'cpu' else model, tok, out, overwrite=True)
    n = model.num_parameters(); del model
    return dict(shape=shape, model_type=mt, n_params=n, n_layers=kw.get('n_layer', kw.get('num_hidden_layers')), vocab_size=kw['vocab_size'],
                tokenizer=tokenizer, build_seconds=round(time.perf_counter() - t0, 1))

STAGES = ['baseline', 'quantize', 'gguf', 'benchmark', 'publish']

def run_config(ckpt: Path, work: Path, max_windows: int, stages=STAGES) -> dict:
    "The main job's stages and settings on the shape checkpoint, with small evaluation and task limits."
    return dict(
        stages=list(stages),
        model=dict(name=str(ckpt), dtype='auto', device='auto'),
        calib=dict(name='offline-code', n_samples=128, seq_len=512, seed=42),
        eval=dict(name='offline-code', split='test', seq_len=2048, batch_size=1, max_windows=max_windows,
                  positions=['pretrain', 'real']),
        quant=dict(method='gptqmodel', weight=dict(bits=4, sym=True, granularity='per_group', group_size=128),
                   special=dict(damp_percent=0.01, order='group_aware')),
        gguf=dict(type='Q4_K_M', extra_types=[]),
        bench=dict(tasks=['code2text', 'bigbench_code_line_description_generate_until',
                          'bigbench_code_line_description_multiple_choice'],
                   variants=['original', 'quantized', 'gguf'], limit=1,
                   task_limits={'bigbench_code_line_description_generate_until': 4,
                                'bigbench_code_line_description_multiple_choice': 8},
                   batch_size=8, gen_kwargs={'num_beams': 1, 'max_gen_toks': 32}, shipped_samples=True),
        save=dict(output_dir=str(work/'outputs'), results_dir=str(work/'results')))

def gib(b): return round(b / 2**30, 2) if b else None

def make_memory_cgroup(limit_gib: float, name: str = None) -> dict:
    """A new memory cgroup of `limit_gib`, v2 or v1: its path, the file a process joins it through and its peak-usage
    file, or why it could not be made. Inside it the kernel reclaims page cache (memory-mapped weights) and kills the
    process if what cannot be reclaimed passes the limit, as a machine of that size without swap would."""
    import os
    name = name or f'quantized-llms-limit-{os.getpid()}'     # a cgroup of its own: memory.peak counts from its making
    limit = str(int(limit_gib * 2**30))
    tries = [(Path('/sys/fs/cgroup'), 'memory.max', 'memory.peak'),                      # v2, unified at the root
             (Path('/sys/fs/cgroup/unified'), 'memory.max', 'memory.peak'),              # v2 beside v1
             (Path('/sys/fs/cgroup/memory'), 'memory.limit_in_bytes', 'memory.max_usage_in_bytes')]   # v1
    why = []
    for root, limit_file, peak_file in tries:
        if not (root/'cgroup.procs').exists(): continue
        if limit_file == 'memory.max' and 'memory' not in (root/'cgroup.controllers').read_text().split():
            why.append(f'{root}: no memory controller'); continue
        g = root/name
        try:
            if limit_file == 'memory.max' and 'memory' not in (root/'cgroup.subtree_control').read_text().split():
                (root/'cgroup.subtree_control').write_text('+memory')
            g.mkdir(exist_ok=True)
            (g/limit_file).write_text(limit)
            if (g/'memory.swap.max').exists(): (g/'memory.swap.max').write_text('0')    # Colab has no swap
            return dict(enforced=True, path=str(g), limit_gib=limit_gib, procs=str(g/'cgroup.procs'), peak_file=str(g/peak_file))
        except OSError as e: why.append(f'{g}: {e}')
    return dict(enforced=False, limit_gib=limit_gib, why='; '.join(why) or 'no cgroup hierarchy found')

def run_cli(argv: list, cg: Optional[dict]) -> int:
    "`quantized-llms ARGV` in a child process, inside the cgroup `cg` from its first instruction when there is one."
    import os, subprocess
    join = (lambda: Path(cg['procs']).write_text(str(os.getpid()))) if cg and cg.get('enforced') else None
    code = "import sys; sys.argv[0] = 'quantized-llms'; from quantized_llms.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, '-c', code, *argv], preexec_fn=join).returncode

def cgroup_peak(cg: Optional[dict]) -> Optional[int]:
    try: return int(Path(cg['peak_file']).read_text()) if cg and cg.get('enforced') else None
    except (OSError, ValueError): return None

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--shape', default='starcoderbase-1b')
    ap.add_argument('--profile', help="machine profile laid over the run (e.g. t4)")
    ap.add_argument('--tokenizer', default='smollm2-135m', help='model whose tokenizer the checkpoint gets (alias, directory or Hub id)')
    ap.add_argument('--layers', type=int, help='fewer blocks than the shape has (a quick try on a CPU)')
    ap.add_argument('--max-windows', type=int, default=4, help='2048-token evaluation windows per perplexity')
    ap.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='passed to quantized-llms run')
    ap.add_argument('--work', help='folder for the checkpoint and the run (default: a new temporary one)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--stem', default='pipeline_gpu', help='name of the result files under --out')
    ap.add_argument('--cgroup', type=float, metavar='GIB', help='run the stages inside a memory cgroup of this many GiB')
    ap.add_argument('--stages', default=','.join(STAGES), help='comma-separated stages (default: all five)')
    ap.add_argument('--tokenizer-vocab', action='store_true',
                    help="give the shape the tokenizer's vocabulary size (codellama-7b's 32,016 with SmolLM2's 49,152-token tokenizer)")
    args = ap.parse_args()
    wanted = [x for x in args.stages.split(',') if x]
    if not wanted or set(wanted) - set(STAGES): ap.error(f"--stages takes {', '.join(STAGES)}, got {args.stages}")
    from quantized_llms.core import atomic_write_json, atomic_write_text, markdown_table, run_metadata
    work = Path(args.work or tempfile.mkdtemp(prefix='pipeline_gpu-'))
    ckpt = work/f'{args.shape}-shape'
    built = build_checkpoint(args.shape, ckpt, args.tokenizer, args.layers, 'cuda' if torch.cuda.is_available() else 'cpu',
                             args.tokenizer_vocab)
    print('built:', built, flush=True)
    cfg = work/'config.yaml'
    cfg.write_text(yaml.safe_dump(run_config(ckpt, work, args.max_windows, wanted), sort_keys=False))
    argv = ['run', str(cfg), '--no-resume', *(['--profile', args.profile] if args.profile else []),
            *[x for s in args.set for x in ('--set', s)]]
    cg = make_memory_cgroup(args.cgroup) if args.cgroup else None      # the stages alone are held to it, not the build
    if cg: print('memory cgroup:', cg, flush=True)
    t0 = time.perf_counter()
    rc = run_cli(argv, cg)
    total = time.perf_counter() - t0
    res = work/'results'/ckpt.name
    table = json.loads((res/'resources.json').read_text()) if (res/'resources.json').is_file() else {}
    records = {s: json.loads((res/f'{s}.json').read_text()) for s in table if (res/f'{s}.json').is_file()}
    applied = next((r['config'] for r in records.values() if 'config' in r), None)   # after the profile and --set
    cap = ((applied or {}).get('model') or {}).get('gpu_memory_gib')
    host = ((applied or {}).get('model') or {}).get('host_memory_gib')
    stages = {s: dict(seconds=round(e['seconds'], 1), peak_RSS_GiB=gib(e['peak_rss_bytes']),
                      peak_unreclaimable_GiB=gib(e.get('peak_anon_bytes')), peak_GPU_GiB=gib(e.get('peak_cuda_bytes')))
              for s, e in table.items()}
    out = Path(args.out)
    if cg: cg['peak_gib'] = gib(cgroup_peak(cg))
    rec = dict(built=built, profile=args.profile, gpu_memory_cap_gib=cap, host_memory_limit_gib=host, cgroup=cg,
               exit_code=rc, total_seconds=round(total, 1),
               stages=stages, config=applied or yaml.safe_load(cfg.read_text()),
               outputs={'quantize': records.get('quantize', {}).get('outputs'),
                        'gguf': records.get('gguf', {}).get('bytes')},
               meta=run_metadata('python benchmarks/pipeline_gpu.py ' + ' '.join(sys.argv[1:])))
    atomic_write_json(out/f'{args.stem}.json', rec)
    rows = [dict(stage=s, **v) for s, v in stages.items()]
    fits = cap and all((v['peak_GPU_GiB'] or 0) <= cap for v in stages.values()) and rc == 0 and set(wanted) <= set(table)
    limits = []
    if cg and cg['enforced']:
        limits.append(f"The stages ran inside a memory cgroup of {cg['limit_gib']:g} GiB ("
                      + ('all finished' if rc == 0 else 'killed at the limit' if rc in (-9, 137) else f'exit code {rc}')
                      + f"); its peak usage, page cache included, was {cg['peak_gib']} GiB.")
    elif cg: limits.append(f"A memory cgroup of {cg['limit_gib']:g} GiB could not be made ({cg['why']}): host memory was not enforced.")
    if host: limits.append(f"Each stage was stopped by quantized_llms if its unreclaimable memory passed {host:g} GiB "
                           f"(model.host_memory_gib).")
    what = 'Every stage' if set(wanted) == set(STAGES) else 'The ' + ', '.join(wanted) + ' stages'
    md = (f"# {what} on {args.shape}'s shape ({built['n_params'] / 1e9:.2f} B parameters, random float16 weights"
          + (f", vocabulary of {built['vocab_size']:,} tokens" if args.tokenizer_vocab else '') + ")\n\n"
          f"Device: {rec['meta']['device']}. Profile: {args.profile or 'none'}"
          + (f" (GPU memory capped at {cap:g} GiB for the whole run)" if cap else '') + f". Exit code {rc}; "
          f"{total:.0f} s in all, after {built['build_seconds']:.0f} s building the checkpoint.\n\n"
          + markdown_table(rows) +
          ("\n" + (f"Every stage ran with PyTorch's allocations capped at {cap:g} GiB.\n" if fits else
                   f"Not every stage finished under the {cap:g} GiB cap.\n") if cap else '') +
          ''.join(f"\n{x}\n" for x in limits) +
          "\nPeak RSS is the kernel's high-water mark of the process in the stage, pages of memory-mapped model files "
          "included (the kernel drops and rereads them under pressure); peak unreclaimable is the anonymous and shared "
          "part, sampled every 50 ms: what a machine without swap runs out of. Peak GPU is PyTorch's peak allocation in "
          "the stage; llama.cpp runs on the CPU. Perplexities and scores are those of random weights and are not reported.\n"
          f"\nProduced by `{rec['meta']['command']}`, {rec['meta']['time_utc']}.\n")
    atomic_write_text(out/f'{args.stem}.md', md)
    print(md)
    if not args.work: shutil.rmtree(work, ignore_errors=True)
    return rc

if __name__ == '__main__': sys.exit(main())
