"""One cross-attention layer that answers key-value retrieval queries (Part 1).

Items are key embedding + value embedding; each query (a key embedding) attends over the items
with `seqattn.attention.MultiHeadAttention`, and a linear readout names the value. With a single
attention layer the only way to answer is to put the weight on the matching item, so the learned
weights can be compared with the known alignment.
"""

import keras

from seqattn.attention import MultiHeadAttention


@keras.saving.register_keras_serializable(package="seqattn")
class RetrievalModel(keras.Model):
    def __init__(self, n_keys: int, n_values: int, d_model: int = 32, num_heads: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.n_keys, self.n_values, self.d_model, self.num_heads = n_keys, n_values, d_model, num_heads
        self.item_key_embedding = keras.layers.Embedding(n_keys, d_model, name="item_key_embedding")
        self.item_value_embedding = keras.layers.Embedding(n_values, d_model, name="item_value_embedding")
        self.query_embedding = keras.layers.Embedding(n_keys, d_model, name="query_embedding")
        self.attention = MultiHeadAttention(num_heads, key_dim=d_model // num_heads, name="cross_attention")
        self.readout = keras.layers.Dense(n_values, name="readout")

    def call(self, inputs, return_attention_scores=False):
        items = self.item_key_embedding(inputs["keys"]) + self.item_value_embedding(inputs["values"])  # (B, n, d)
        queries = self.query_embedding(inputs["queries"])  # (B, n, d)
        attended, weights = self.attention(queries, items, return_attention_scores=True)  # weights (B, nh, n, n)
        logits = self.readout(attended)  # (B, n, n_values)
        return (logits, weights) if return_attention_scores else logits

    def get_config(self):
        return {
            **super().get_config(),
            "n_keys": self.n_keys,
            "n_values": self.n_values,
            "d_model": self.d_model,
            "num_heads": self.num_heads,
        }
