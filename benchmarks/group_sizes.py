"""Each module's grid (bits, group size) for the least estimated loss at a byte budget: a per-module `dynamic`.

Each block linear of the model is rounded to nearest on every candidate grid (`--grids`, asymmetric or not as
`quant.weight`) and each change weighed by the model's measured sensitivity (`gguf_mix.tensor_sensitivity`: half the
Fisher-weighted squared change estimates the KL divergence it adds). `gguf_mix.choose_types` then picks one grid per
module, the least summed estimate whose packed size (`algorithm.estimated_bytes`' count: codes, 16-bit scales, zeros,
a 32-bit group index per input; every other tensor at 16 bits) is within `--budget-mib`. Prints the
`quant.special.dynamic` to give GPTQ (exact module names, for the modules off `quant.weight`'s grid) and writes it
with the estimates to `--out` (JSON).

    python benchmarks/group_sizes.py --config results/SmolLM2-135M-Instruct/w4-dynamic/base.yaml --budget-mib 112.68 \
        --grids 4:128,4:64,4:32,8:128 --out results/SmolLM2-135M-Instruct/w4-dynamic/group_sizes.json
"""
import argparse, json, re, sys
from pathlib import Path

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--config', required=True, help='a run configuration (its model, calibration windows and weight grid)')
    ap.add_argument('--budget-mib', type=float, required=True, help='estimated packed size to stay within, MiB')
    ap.add_argument('--grids', default='4:64,4:32', help='candidate grids, bits:group_size, comma-separated')
    ap.add_argument('--windows', type=int, default=32, help='calibration windows the sensitivity is measured on')
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    import dataclasses
    from quantized_llms.core import RunConfig, atomic_write_json, run_metadata
    from quantized_llms.runs import Run
    from quantized_llms.models import load_from_config
    from quantized_llms.blocks import transformer_blocks, block_linears
    from quantized_llms.quantizers import quantize_tensor
    from quantized_llms.gguf_mix import tensor_sensitivity, estimated_kl, choose_types
    cfg = RunConfig.from_yaml(args.config)
    model, _ = load_from_config(cfg.model)
    lay = Run.of(cfg)
    ids = {id(m): n for n, m in model.named_modules()}
    names = {ids[id(lin)]: ids[id(lin)] for block in transformer_blocks(model) for lin in block_linears(block).values()}
    sens = tensor_sensitivity(model, lay.calib[:args.windows], names)
    base = cfg.quant.weight
    grids = {g: dataclasses.replace(base, granularity='per_group', bits=int(g.split(':')[0]), group_size=int(g.split(':')[1]))
             for g in args.grids.split(',')}
    table, fixed = {}, sum(p.numel() * 2 for p in model.parameters())    # every tensor at 16 bits, less the linears
    for n in names:
        W = model.get_submodule(n).weight.detach().float()
        r, c = W.shape
        cost = lambda s: (r * c * s.bits + r * -(-c // s.group_size) * (16 + s.bits)) // 8 + c * 4
        table[n] = {g: (cost(s), estimated_kl(sens[n], (quantize_tensor(W, s) - W).numpy())) for g, s in grids.items()}
        fixed -= r * c * 2
    budget = int(args.budget_mib * 2**20)
    choice = choose_types(table, budget - fixed)
    size = fixed + sum(table[n][g][0] for n, g in choice.items())
    on_base = lambda g: (grids[g].bits, grids[g].group_size) == (base.bits, base.group_size)
    dynamic = {re.escape(n) + '$': {k: v for k, v in (('bits', grids[g].bits), ('group_size', grids[g].group_size))
                                    if v != getattr(base, k)} for n, g in choice.items() if not on_base(g)}
    counts = {g: sum(1 for x in choice.values() if x == g) for g in grids}
    command = 'python benchmarks/group_sizes.py ' + ' '.join(sys.argv[1:])
    out = dict(budget_bytes=budget, estimated_bytes=size, grids=counts, estimated_kl=sum(table[n][g][1] for n, g in choice.items()),
               dynamic=dynamic, choice=choice, table=table, command=command, meta=run_metadata(command))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out), out)
    print(f"grids {counts}: estimated {size} bytes ({size / 2**20:.2f} MiB), estimated KL {out['estimated_kl']:.4f}")
    print(json.dumps(dynamic))

if __name__ == '__main__': sys.exit(main())
