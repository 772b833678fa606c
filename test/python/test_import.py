"""The Hugging Face config importer through the Python module."""

import json

import pytest

import laer

# A tiny Mixtral config.json.
TINY_MIXTRAL = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "vocab_size": 100,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 16,
    "rms_norm_eps": 1e-05,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "output_router_logits": False,
}


def test_import_verifies_and_scales_down():
    ir = laer.import_hf_config(json.dumps(TINY_MIXTRAL), name="tiny")
    assert "func.func @tiny(" in ir
    assert ir.count("moe.layer") == 2
    assert "top_k = 2 score<softmax> renormalize" in ir
    # The IR goes through the compiler as it is.
    assert "moe.layer" in laer.run_pipeline(ir)

    small = laer.import_hf_config(json.dumps(TINY_MIXTRAL), layers=1,
                                  hidden_div=2, vocab=10, seq_len=8)
    assert "func.func @mixtral_lm(" in small
    assert small.count("moe.layer") == 1
    assert "%embed: tensor<10x16xf32>" in small
    assert "%w1_0: tensor<4x16x24xf32>" in small
    assert "sequence_length = 8" in small


@pytest.mark.parametrize("field, value, message", [
    ("hidden_act", "gelu", "field 'hidden_act' = \"gelu\""),
    ("router_jitter_noise", 0.1,
     "field 'router_jitter_noise' = 0.1: router jitter noise is not supported"),
    ("rope_scaling", {"type": "yarn", "factor": 4.0},
     "field 'rope_scaling.type' = \"yarn\": YaRN"),
    ("frobnicate", 1, "field 'frobnicate' is not known for model_type mixtral"),
])
def test_refused_field_raises_naming_it(field, value, message):
    config = dict(TINY_MIXTRAL, **{field: value})
    with pytest.raises(laer.CompileError) as info:
        laer.import_hf_config(json.dumps(config))
    assert message in str(info.value)


def test_bad_option_raises():
    with pytest.raises(laer.CompileError, match="--hidden-div 3: field 'hidden_size' = 32"):
        laer.import_hf_config(json.dumps(TINY_MIXTRAL), hidden_div=3)


def test_notes_are_warnings():
    config = dict(TINY_MIXTRAL, router_aux_loss_coef=0.02)
    with pytest.warns(UserWarning, match="router_aux_loss_coef' = 0.02 is not applied"):
        laer.import_hf_config(json.dumps(config))


def test_router_losses_and_their_batch():
    config = dict(TINY_MIXTRAL, output_router_logits=True)
    with pytest.warns(UserWarning, match="Switch / Megatron form"):
        micro = laer.import_hf_config(json.dumps(config))
    assert "aux_loss<micro_batch>" in micro
    with pytest.warns(UserWarning):
        whole = laer.import_hf_config(json.dumps(config),
                                      aux_loss_batch="global")
    assert "aux_loss<global_batch>" in whole
    with pytest.raises(ValueError, match="aux_loss_batch must be 'micro' or 'global'"):
        laer.import_hf_config(json.dumps(config), aux_loss_batch="all")


def test_deepseek_v3_bias_update_rate_and_tied_head():
    config = {
        "model_type": "deepseek_v3", "vocab_size": 64, "hidden_size": 32,
        "intermediate_size": 64, "moe_intermediate_size": 16,
        "num_hidden_layers": 2, "first_k_dense_replace": 1,
        "num_attention_heads": 4, "q_lora_rank": None, "kv_lora_rank": 16,
        "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8,
        "n_routed_experts": 8, "n_shared_experts": 1,
        "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1,
        "max_position_embeddings": 16, "tie_word_embeddings": True,
    }
    ir = laer.import_hf_config(json.dumps(config), bias_update_rate=0.0)
    assert "dense.latent_attention" in ir
    assert "bias_update_rate = 0.0e+00" in ir
    assert "dense.linear %out, %embed transposed" in ir
    with pytest.warns(UserWarning, match="e_score_correction_bias moves by 0.001"):
        laer.import_hf_config(json.dumps(config))
    config["model_type"] = "deepseek_v2"
    with pytest.raises(laer.CompileError, match="--bias-update-rate: model_type deepseek_v2"):
        laer.import_hf_config(json.dumps(config), bias_update_rate=0.01)
