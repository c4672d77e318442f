"""Warm, repeated speed of a published architecture's shape: the float16 original, its GPTQ W4 g128 checkpoint through
each GPTQModel kernel asked for, and its GGUF Q4_K_M file through llama.cpp on the CPU.

Speed depends on shapes and kernels, not on the weights' values, so this builds the shape with random weights
(`pipeline_gpu.build_checkpoint`), rounds it to the GPTQ format with RTN (the packed layout every GPTQ method writes:
W4, group 128, symmetric, no act-order, which Marlin runs), converts it to GGUF, then runs `quantized-llms speed`:

    python benchmarks/speed_shape.py --shape starcoderbase-1b --backends marlin,triton --out results/starcoderbase-1b-shape

It writes `speed.{json,md}` under `--out` (rows of another device already there are kept).
"""
import argparse, shutil, sys, tempfile
from pathlib import Path
import torch, yaml

sys.path.insert(0, str(Path(__file__).parent))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--shape', default='starcoderbase-1b')
    ap.add_argument('--tokenizer', default='smollm2-135m')
    ap.add_argument('--layers', type=int, help='fewer blocks than the shape has (a quick try on a CPU)')
    ap.add_argument('--backends', default='marlin,triton', help='GPTQModel kernels to time')
    ap.add_argument('--batches', default='1,16'); ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--n-prompt', type=int, default=512); ap.add_argument('--n-gen', type=int, default=128)
    ap.add_argument('--work', help='folder for the checkpoints (default: a new temporary one)')
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    from pipeline_gpu import build_checkpoint
    from quantized_llms.core import RunConfig
    from quantized_llms.quantize import run_quantize
    from quantized_llms.gguf import run_gguf
    from quantized_llms.speed import SpeedSettings, run_speed, speed_markdown
    work = Path(args.work or tempfile.mkdtemp(prefix='speed_shape-'))
    ckpt = work/f'{args.shape}-shape'
    if not (ckpt/'config.json').is_file():
        print('built:', build_checkpoint(args.shape, ckpt, args.tokenizer, args.layers, 'cuda' if torch.cuda.is_available() else 'cpu'), flush=True)
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    results = work/'results'/ckpt.name; results.mkdir(parents=True, exist_ok=True)
    if (out/'speed.json').is_file(): shutil.copy(out/'speed.json', results/'speed.json')    # keep other devices' rows
    cfg = work/'config.yaml'
    cfg.write_text(yaml.safe_dump(dict(
        model=dict(name=str(ckpt), dtype='auto', device='auto'),
        calib=dict(name='offline-code', n_samples=8, seq_len=512, seed=42),
        eval=dict(name='offline-code', split='test', seq_len=2048, max_windows=1, positions=['pretrain']),
        quant=dict(method='rtn', weight=dict(bits=4, sym=True, granularity='per_group', group_size=128)),
        gguf=dict(type='Q4_K_M', extra_types=[]), save=dict(output_dir=str(work/'outputs'), results_dir=str(work/'results'))),
        sort_keys=False))
    command = 'python benchmarks/speed_shape.py ' + ' '.join(sys.argv[1:])
    run = RunConfig.from_yaml(cfg)
    # the stages alone (no lm-eval needed where this runs); made already in this --work folder: kept
    if not (results/'quantize.json').is_file(): run_quantize(run, command)
    if not (results/'gguf.json').is_file(): run_gguf(run, command)
    s = SpeedSettings(n_prompt=args.n_prompt, n_gen=args.n_gen, batches=[int(b) for b in args.batches.split(',')],
                      repeats=args.repeats, gptq_backends=args.backends.split(','))
    print(speed_markdown(run_speed(run, s, command)))
    for f in ('speed.json', 'speed.md'): shutil.copy(results/f, out/f)
    if not args.work: shutil.rmtree(work, ignore_errors=True)
    return 0

if __name__ == '__main__': sys.exit(main())
