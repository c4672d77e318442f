"""GPTQ quantization cost on a GPU for a model of a real architecture's shape with random weights.

Weights of gated models cannot be fetched on an offline GPU machine, but time and memory depend only on the shapes,
so this builds `bigcode/starcoderbase-1b`'s architecture from its published config, saves it as an fp16 checkpoint,
and runs the quantize stage's `gptqmodel` method on it with 128 x 512 calibration tokens (GPTQ's setting).

    python benchmarks/gptq_speed.py --shape starcoderbase-1b --out results/starcoderbase-1b-shape
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path
import torch

# Published configs (config.json on the Hub) of the StarCoderBase models, architecture fields only.
SHAPES = {
    'starcoderbase-1b': dict(model_type='gpt_bigcode', vocab_size=49152, n_positions=8192, n_embd=2048, n_layer=24,
                             n_head=16, n_inner=8192, multi_query=True, activation_function='gelu_pytorch_tanh'),
    'starcoderbase-3b': dict(model_type='gpt_bigcode', vocab_size=49152, n_positions=8192, n_embd=2816, n_layer=36,
                             n_head=22, n_inner=11264, multi_query=True, activation_function='gelu_pytorch_tanh'),
}

def word_tokenizer(vocab_size):
    "A word-level tokenizer over the shipped corpus, so the checkpoint is complete without the Hub."
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from quantized_llms.data import load_text
    words = sorted(set(load_text('offline-code', 'train').split()))[:vocab_size - 2]
    vocab = {'<unk>': 0, '<|endoftext|>': 1, **{w: i + 2 for i, w in enumerate(words)}}
    t = Tokenizer(models.WordLevel(vocab, unk_token='<unk>')); t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=t, unk_token='<unk>', eos_token='<|endoftext|>', bos_token='<|endoftext|>')

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--shape', default='starcoderbase-1b', choices=sorted(SHAPES))
    ap.add_argument('--n-samples', type=int, default=128)
    ap.add_argument('--seq-len', type=int, default=512)
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    from transformers import AutoConfig, AutoModelForCausalLM
    from quantized_llms.core import RunConfig, atomic_write_json, atomic_write_text, markdown_table, run_metadata, dir_size_bytes
    from quantized_llms.algorithm import get_algorithm, QuantizeJob
    from quantized_llms.gptq_format import load_gptq
    work = Path(tempfile.mkdtemp())
    shape = dict(SHAPES[args.shape]); mt = shape.pop('model_type')
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(mt, **shape), dtype=torch.float16)
    ckpt = work/args.shape
    tok = word_tokenizer(shape['vocab_size'])
    model.save_pretrained(ckpt); tok.save_pretrained(ckpt)
    n_params = model.num_parameters()
    calib = torch.randint(2, shape['vocab_size'], (args.n_samples, args.seq_len), generator=torch.Generator().manual_seed(0))
    qc = RunConfig.from_dict({'quant': {'method': 'gptqmodel', 'special': {'backend': 'triton'}}}).quant
    res = get_algorithm('gptqmodel').quantize(QuantizeJob(qc, model, tok, calib, 'cuda', real_dir=work/'out'/f'{args.shape}-GPTQ',
                                                       source_dir=lambda: ckpt))
    del model
    run = dict(output_dir=str(res.real_dir), quant_seconds=res.seconds, peak_rss_bytes=res.peak_rss_bytes,
               peak_cuda_bytes=res.peak_cuda_bytes, source_bytes=dir_size_bytes(ckpt), quantized_bytes=dir_size_bytes(res.real_dir))
    print('quantized:', run, flush=True)
    # load back and time a forward pass of one 512-token window; machete/marlin kernels build from sources fetched
    # online, so on an offline machine we ask for triton, then torch
    fwd, kernel = None, None
    for backend in ('triton', 'torch'):
        try: q, _ = load_gptq(run['output_dir'], device='cuda', backend=backend)
        except Exception as e: print(f'backend {backend}: {type(e).__name__}: {str(e)[:200]}'); continue
        x = calib[:1].cuda()
        with torch.no_grad():
            for _ in range(3): q(x)
            torch.cuda.synchronize(); t0 = time.perf_counter()
            for _ in range(10): q(x)
            torch.cuda.synchronize(); fwd = (time.perf_counter() - t0) / 10
        kernel = type(q.transformer.h[0].attn.c_attn).__name__
        break
    from dataclasses import asdict
    rec = dict(shape=args.shape, n_params=n_params, weights='random (shape of the published config)', quant=asdict(qc),
               calib=f'{args.n_samples} x {args.seq_len} random tokens', run=run,
               forward_512_tokens_ms=round(fwd * 1000, 2) if fwd else None, kernel=kernel,
               meta=run_metadata('python benchmarks/gptq_speed.py ' + ' '.join(sys.argv[1:])))
    out = Path(args.out)
    atomic_write_json(out/'gptq_gpu.json', rec)
    row = dict(model=f'{args.shape} (random weights)', device=rec['meta']['device'], quant='GPTQ W4 g128',
               calib=rec['calib'], quant_seconds=run['quant_seconds'], peak_GPU_GiB=f"{run['peak_cuda_bytes'] / 2**30:.2f}",
               size_MB_fp16=f"{run['source_bytes'] / 2**20:.0f}", size_MB_gptq=f"{run['quantized_bytes'] / 2**20:.0f}",
               forward_512_ms=rec['forward_512_tokens_ms'], kernel=rec['kernel'])
    atomic_write_text(out/'gptq_gpu.md', f"# GPTQ on a GPU: {args.shape} shape\n\n" + markdown_table([row]) +
                      f"\nProduced by `{rec['meta']['command']}` on {rec['meta']['device']}, {rec['meta']['time_utc']}.\n")
    print(markdown_table([row]))

if __name__ == '__main__': main()
