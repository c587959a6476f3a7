"""Writes the config.json fixtures of tests/model/test_config.c with transformers 5.23.

Run once from the repository root: python3 tests/model/data/make_configs.py
The outputs are committed; CI does not run this. Each file is exactly what transformers
serialises (to_json_string), plus "architectures" as save_pretrained adds it for the
multimodal model. Global-layer geometry is given the way Google's files give it
(global_head_dim / num_global_key_value_heads); transformers turns it into per_layer_config.
"""
import json
from transformers import Gemma4Config, Gemma4TextConfig, Gemma4VisionConfig

COMMON = dict(hidden_size_per_layer_input=0, attention_k_eq_v=True, final_logit_softcapping=30.0,
              eos_token_id=[1, 106], use_bidirectional_attention="vision")


def text(**kw):
    return Gemma4TextConfig(**{**COMMON, **kw})


def save(name, cfg, multimodal):
    d = json.loads(cfg.to_json_string())
    if multimodal:
        d["architectures"] = ["Gemma4ForConditionalGeneration"]
    with open(f"tests/model/data/{name}", "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
        f.write("\n")


# tiny dense, text-only form
save("config_tiny_dense_text.json",
     text(hidden_size=64, num_hidden_layers=12, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
          global_head_dim=32, num_global_key_value_heads=1, intermediate_size=128, vocab_size=512,
          sliding_window=8, max_position_embeddings=4096), False)
# tiny MoE, multimodal form
save("config_tiny_moe_mm.json",
     Gemma4Config(text_config=text(hidden_size=64, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2,
                                   head_dim=16, global_head_dim=64, num_global_key_value_heads=1,
                                   intermediate_size=96, vocab_size=512, sliding_window=8, enable_moe_block=True,
                                   num_experts=8, top_k_experts=2, moe_intermediate_size=32,
                                   max_position_embeddings=4096).to_dict(),
                  vision_config=Gemma4VisionConfig().to_dict()), True)
# real geometries (spec §1), multimodal form as transformers writes it
save("config_31b_mm.json",
     Gemma4Config(text_config=text(hidden_size=5376, num_hidden_layers=60, num_attention_heads=32,
                                   num_key_value_heads=16, head_dim=256, global_head_dim=512,
                                   num_global_key_value_heads=4, intermediate_size=21504, vocab_size=262144,
                                   sliding_window=1024, max_position_embeddings=262144).to_dict(),
                  vision_config=Gemma4VisionConfig().to_dict()), True)
save("config_26b_mm.json",
     Gemma4Config(text_config=text(hidden_size=2816, num_hidden_layers=30, num_attention_heads=16,
                                   num_key_value_heads=8, head_dim=256, global_head_dim=512,
                                   num_global_key_value_heads=2, intermediate_size=2112, vocab_size=262144,
                                   sliding_window=1024, max_position_embeddings=262144, enable_moe_block=True,
                                   num_experts=128, top_k_experts=8, moe_intermediate_size=704).to_dict(),
                  vision_config=Gemma4VisionConfig().to_dict()), True)
