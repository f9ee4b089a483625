// Model presets: configurations only, in the config.json form Hugging Face publishes, so a preset
// and a downloaded directory go through the same parser. A preset loads with seeded random
// weights (tests, demos, dry runs, `onelora params`); real weights come from a directory.
// DiT presets live with the DiT model (src/models/dit.ts, DIT_PRESETS).

export interface HfPreset {
  readonly family: 'llama' | 'vit';
  readonly hf: Readonly<Record<string, unknown>>;
}

const llama2 = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  initializer_range: 0.02,
  max_position_embeddings: 4096,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  tie_word_embeddings: false,
  vocab_size: 32000,
} as const;

export const PRESETS: Readonly<Record<string, HfPreset>> = Object.freeze({
  // meta-llama/Llama-2-7b-hf config.json
  'llama2-7b': { family: 'llama', hf: { ...llama2, hidden_size: 4096, intermediate_size: 11008, num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 32 } },
  // meta-llama/Llama-2-13b-hf config.json
  'llama2-13b': { family: 'llama', hf: { ...llama2, hidden_size: 5120, intermediate_size: 13824, num_attention_heads: 40, num_hidden_layers: 40, num_key_value_heads: 40 } },
  // google/vit-base-patch16-224-in21k config.json: a ViTModel backbone, the classifier is made for the task.
  'vit-b16': {
    family: 'vit',
    hf: {
      architectures: ['ViTModel'], model_type: 'vit', hidden_act: 'gelu', hidden_size: 768, image_size: 224, initializer_range: 0.02,
      intermediate_size: 3072, layer_norm_eps: 1e-12, num_attention_heads: 12, num_channels: 3, num_hidden_layers: 12, patch_size: 16, qkv_bias: true,
    },
  },
  // Test and demo sizes: GQA (4 query heads over 2 key/value heads) and a byte-sized vocabulary.
  'tiny-llama': {
    family: 'llama',
    hf: {
      ...llama2, vocab_size: 256, hidden_size: 64, intermediate_size: 176, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2,
      max_position_embeddings: 512,
    },
  },
  'tiny-vit': {
    family: 'vit',
    hf: {
      architectures: ['ViTForImageClassification'], model_type: 'vit', hidden_act: 'gelu', hidden_size: 64, image_size: 32, intermediate_size: 128,
      layer_norm_eps: 1e-12, num_attention_heads: 4, num_channels: 3, num_hidden_layers: 2, patch_size: 8, qkv_bias: true, num_labels: 10,
    },
  },
});
