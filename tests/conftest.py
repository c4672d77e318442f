import os
# Tests never reach the Hub: everything they load is built from configs or shipped.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_VERBOSITY', 'error')

# The heaviest tests first: under `-n 2` a worker that draws one of them last keeps the suite waiting on it alone.
HEAVIEST = ('02_gguf]', '00f_llamacpp]', '00d_gptq_format]', '02a_gguf_mix]', '07a_algorithm]', '05a_batch]', '03_benchmark]',
            '05b_cli]', 'test_run_and_batch_from_the_wheel', 'test_quantized_llms_run_under_torchrun', '01_quantize]',
            'algorithms/gptqmodel]', '00a_models]', '03b_speed]', 'test_ray_and_in_order_give_the_same_results')

def pytest_collection_modifyitems(items):
    rank = lambda item: next((i for i, key in enumerate(HEAVIEST) if item.nodeid.endswith(key)), len(HEAVIEST))
    items.sort(key=rank)        # stable: the rest keep their order
