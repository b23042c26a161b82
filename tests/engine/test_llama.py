"""The compact Llama forward against transformers' LlamaForCausalLM: the starter model and a small random one."""

from __future__ import annotations

import pytest
import torch

from autocomplete.engine import compact, llama
from autocomplete.text.sample import generate


@pytest.fixture(scope="module")
def smol_dir(smollm2_cache):
    return smollm2_cache / "models" / "smollm2-135m"


@pytest.fixture(scope="module")
def random_llama(tmp_path_factory):
    """A small random Llama unlike SmolLM2's shape: one key/value head for four query heads, untied head."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=128,
                         rope_theta=5000.0, tie_word_embeddings=False)
    out = tmp_path_factory.mktemp("random-llama")
    LlamaForCausalLM(config).save_pretrained(out)
    return out


def reference(directory):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(directory).eval()


@pytest.mark.parametrize("which", ["smol_dir", "random_llama"])
def test_logits_equal_transformers(which, request):
    directory = request.getfixturevalue(which)
    ours, theirs = llama.load(directory), reference(directory)
    ids = torch.randint(0, 300, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        full = ours(ids).logits
        assert torch.allclose(full, theirs(ids).logits, atol=1e-4, rtol=0)
        # the same through the KV cache: a prefix, then several tokens, then one
        cache = ours(ids[:, :5]).cache
        middle = ours(ids[:, 5:10], cache=cache).logits
        last = ours(ids[:, 10:], cache=cache).logits
    assert torch.allclose(torch.cat([middle, last], 1), full[:, 5:], atol=1e-4, rtol=0)


def test_greedy_equals_transformers_generate_on_the_starter(smol_fp32, smol_dir):
    """On each engine: the compact forward in torch, and its export on ONNX Runtime."""
    if smol_fp32.engine.name == "torch":
        assert type(smol_fp32.model).__module__ == "autocomplete.engine.llama"  # the starter runs on the compact forward
    theirs = reference(smol_dir)
    for prompt in ["The capital of France is", "san francisco", "서울 날씨"]:
        ids = smol_fp32.encode(prompt)
        expected = theirs.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=12, pad_token_id=2)
        ours = list(generate(smol_fp32.engine, ids, 12, temperature=0, eos_ids=smol_fp32.eos_ids))
        assert ours == expected[0, len(ids):].tolist()[: len(ours)]


def test_tokenizer_equals_transformers(smol, smol_dir):
    from transformers import AutoTokenizer

    theirs = AutoTokenizer.from_pretrained(smol_dir)
    for text in ["stock mar", "  two  spaces\n", "서울 🍕 naïve", "<|im_end|> after"]:
        assert smol.encode(text) == theirs(text)["input_ids"]
        assert smol.decode(smol.encode(text)) == theirs.decode(theirs(text)["input_ids"], skip_special_tokens=True)
    assert (smol.tokenizer.bos_token_id, smol.tokenizer.eos_token_id) == (theirs.bos_token_id, theirs.eos_token_id)


def test_other_llamas_keep_transformers_modeling(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "rope_scaling": {"rope_type": "yarn"}}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "tokenizer.json").write_text("{}")
    assert compact.architecture(tmp_path) is None
