"Publishing for real: runs only where HF_TOKEN is set (and the Hub is reachable); pushes a private repo, then deletes it."
import os, tempfile, uuid
from pathlib import Path
import pytest

pytestmark = pytest.mark.skipif(not os.environ.get('HF_TOKEN') or os.environ.get('HF_HUB_OFFLINE') == '1',
                                reason='needs HF_TOKEN and network (HF_HUB_OFFLINE unset)')

def test_push_private_repo_and_delete():
    from huggingface_hub import HfApi
    from quantized_llms.hub import publish, parse_card, assert_no_token
    api = HfApi(token=os.environ['HF_TOKEN'])
    repo_id = f"{api.whoami()['name']}/quantized-llms-test-{uuid.uuid4().hex[:8]}-GPTQ"
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d/'README.md').write_text('---\nlicense: other\nbase_model_relation: quantized\n---\n# test\n')
        (d/'quantize_config.json').write_text('{"bits": 4}')
        try:
            url = publish(d, repo_id, private=True, dry_run=False)
            assert url.endswith(repo_id)
            assert api.model_info(repo_id).private
            assert {'README.md', 'quantize_config.json'} <= set(api.list_repo_files(repo_id))
            assert_no_token([d])
        finally:
            api.delete_repo(repo_id, missing_ok=True)
