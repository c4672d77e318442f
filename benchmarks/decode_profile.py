"""Where a batch-1 decode step's time goes on the GPU: the float16 shape and its Marlin checkpoint, one profiled run each.

Reads the folder `speed_shape.py --work` wrote (the float16 checkpoint and its RTN W4 g128 checkpoint), decodes 128
tokens through `timing.TorchRunner` (the CUDA graph the speed table times), and prints, per variant, the wall time per
token, the GPU kernel time per token, the kernels per token, and torch.profiler's table of the kernels by GPU time.

    python benchmarks/decode_profile.py --work /root/sc1b > decode_profile.txt
"""
import argparse, glob, sys, time

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--work', required=True, help="speed_shape.py's --work folder")
    ap.add_argument('--backend', default='marlin')
    args = ap.parse_args()
    import torch
    from torch.profiler import profile, ProfilerActivity
    from quantized_llms.timing import TorchRunner
    from quantized_llms.models import load_model
    from quantized_llms.gptq_format import load_gptq
    ck = glob.glob(f'{args.work}/*-shape')[0]
    packed = [p.rsplit('/', 1)[0] for p in glob.glob(f'{args.work}/outputs/**/quantize_config.json', recursive=True)]
    def one(name, model, n=128):
        r = TorchRunner(model); run = r.decode(1, n)
        for _ in range(3): run()
        torch.cuda.synchronize(); t0 = time.perf_counter(); run(); torch.cuda.synchronize(); wall = time.perf_counter() - t0
        with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as p:
            run(); torch.cuda.synchronize()
        avg = p.key_averages()
        gpu = sum(getattr(e, 'self_device_time_total', 0) for e in avg)
        kernels = sum(e.count for e in avg if e.device_type.name == 'CUDA' or getattr(e, 'self_device_time_total', 0) > 0)
        print(f'== {name}: mode {r.mode}, wall {wall * 1e3 / n:.3f} ms/token, GPU kernel time {gpu / 1e3 / n:.3f} ms/token, '
              f'kernels/token {kernels / n:.0f}', flush=True)
        print(avg.table(sort_by='self_device_time_total', row_limit=22, max_name_column_width=70), flush=True)
    m, _ = load_model(ck, device='cuda', dtype='float16'); m.set_attn_implementation('sdpa'); one('float16', m); del m
    if packed: one(args.backend, load_gptq(packed[0], 'cuda', backend=args.backend)[0])
    return 0

if __name__ == '__main__': sys.exit(main())
