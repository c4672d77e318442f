"""Every stage of `quantized-llms run` on a model of a published architecture's shape, with random weights, and the
time and peak memory of each stage.

Gated weights cannot be fetched on an offline GPU machine, but what a stage costs depends on the shapes. This builds
`bigcode/starcoderbase-1b`'s (or -3b's) architecture from its published config, saves it as a float16 checkpoint with
SmolLM2's tokenizer (a 49,152-token BPE vocabulary like StarCoder's own, which llama.cpp's converter recognises), and
runs baseline, quantize (GPTQModel), gguf (llama.cpp's StarCoder converter and k-quants), benchmark (lm-eval) and the
publish dry run on it, under a machine profile such as `t4` (float16, GPU memory capped at 15 GiB):

    python benchmarks/pipeline_gpu.py --shape starcoderbase-1b --profile t4 --out results/starcoderbase-1b-shape

It writes `pipeline_gpu.{json,md}` under `--out`. The numbers of quality (perplexity, lm-eval scores) are those of
random weights: only that every stage runs, and what it costs, are measured here.
"""
import argparse, json, shutil, sys, tempfile, time
from pathlib import Path
import torch, yaml

sys.path.insert(0, str(Path(__file__).parent))

def build_checkpoint(shape: str, out: Path, tokenizer: str, n_layers=None, device='cpu') -> dict:
    "Save `shape` with random float16 weights (made on `device`: fast on a GPU) and `tokenizer`'s files in `out`."
    from transformers import AutoConfig, AutoModelForCausalLM
    from gptq_speed import SHAPES
    from engine_speed import EXTRA_SHAPES
    from quantized_llms.models import load_tokenizer, save_checkpoint
    kw = dict({**SHAPES, **EXTRA_SHAPES}[shape]); mt = kw.pop('model_type')
    if n_layers: kw['n_layer' if mt == 'gpt_bigcode' else 'num_hidden_layers'] = n_layers
    tok = load_tokenizer(tokenizer)
    if len(tok) != kw['vocab_size']:
        raise SystemExit(f"error: tokenizer {tokenizer} has {len(tok)} tokens, the {shape} shape {kw['vocab_size']}: pick one of that size")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(mt, **kw), dtype=torch.float16)
    save_checkpoint(model.cpu() if device != 'cpu' else model, tok, out, overwrite=True)
    n = model.num_parameters(); del model
    return dict(shape=shape, model_type=mt, n_params=n, n_layers=kw.get('n_layer', kw.get('num_hidden_layers')),
                tokenizer=tokenizer, build_seconds=round(time.perf_counter() - t0, 1))

def run_config(ckpt: Path, work: Path, max_windows: int) -> dict:
    "The main job's stages and settings on the shape checkpoint, with small evaluation and task limits."
    return dict(
        stages=['baseline', 'quantize', 'gguf', 'benchmark', 'publish'],
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
    args = ap.parse_args()
    from quantized_llms.core import atomic_write_json, atomic_write_text, markdown_table, run_metadata
    from quantized_llms import cli
    work = Path(args.work or tempfile.mkdtemp(prefix='pipeline_gpu-'))
    ckpt = work/f'{args.shape}-shape'
    built = build_checkpoint(args.shape, ckpt, args.tokenizer, args.layers, 'cuda' if torch.cuda.is_available() else 'cpu')
    print('built:', built, flush=True)
    cfg = work/'config.yaml'
    cfg.write_text(yaml.safe_dump(run_config(ckpt, work, args.max_windows), sort_keys=False))
    argv = ['run', str(cfg), '--no-resume', *(['--profile', args.profile] if args.profile else []),
            *[x for s in args.set for x in ('--set', s)]]
    t0 = time.perf_counter()
    rc = cli.main(argv)
    total = time.perf_counter() - t0
    res = work/'results'/ckpt.name
    table = json.loads((res/'resources.json').read_text()) if (res/'resources.json').is_file() else {}
    cap = next((float(s.split('=', 1)[1]) for s in args.set if s.startswith('model.gpu_memory_gib=')), None)
    if cap is None and args.profile:
        from quantized_llms.core import profile_settings
        cap = profile_settings(args.profile).get('model.gpu_memory_gib')
    stages = {s: dict(seconds=round(e['seconds'], 1), peak_RSS_GiB=gib(e['peak_rss_bytes']),
                      peak_GPU_GiB=gib(e.get('peak_cuda_bytes'))) for s, e in table.items()}
    records = {s: json.loads((res/f'{s}.json').read_text()) for s in table if (res/f'{s}.json').is_file()}
    applied = next((r['config'] for r in records.values() if 'config' in r), None)   # after the profile and --set
    out = Path(args.out)
    rec = dict(built=built, profile=args.profile, gpu_memory_cap_gib=cap, exit_code=rc, total_seconds=round(total, 1),
               stages=stages, config=applied or yaml.safe_load(cfg.read_text()),
               outputs={'quantize': records.get('quantize', {}).get('outputs'),
                        'gguf': records.get('gguf', {}).get('bytes')},
               meta=run_metadata('python benchmarks/pipeline_gpu.py ' + ' '.join(sys.argv[1:])))
    atomic_write_json(out/'pipeline_gpu.json', rec)
    rows = [dict(stage=s, **v) for s, v in stages.items()]
    fits = cap and all((v['peak_GPU_GiB'] or 0) <= cap for v in stages.values()) and rc == 0 and len(stages) == 5
    md = (f"# Every stage on {args.shape}'s shape ({built['n_params'] / 1e9:.2f} B parameters, random float16 weights)\n\n"
          f"Device: {rec['meta']['device']}. Profile: {args.profile or 'none'}"
          + (f" (GPU memory capped at {cap:g} GiB for the whole run)" if cap else '') + f". Exit code {rc}; "
          f"{total:.0f} s in all, after {built['build_seconds']:.0f} s building the checkpoint.\n\n"
          + markdown_table(rows) +
          ("\n" + (f"Every stage ran with PyTorch's allocations capped at {cap:g} GiB.\n" if fits else
                   f"Not every stage finished under the {cap:g} GiB cap.\n") if cap else '') +
          "\nPeak GPU is PyTorch's peak allocation in the stage; llama.cpp runs on the CPU. Perplexities and scores are "
          "those of random weights and are not reported.\n"
          f"\nProduced by `{rec['meta']['command']}`, {rec['meta']['time_utc']}.\n")
    atomic_write_text(out/'pipeline_gpu.md', md)
    print(md)
    if not args.work: shutil.rmtree(work, ignore_errors=True)
    return rc

if __name__ == '__main__': sys.exit(main())
