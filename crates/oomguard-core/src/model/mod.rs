//! Model shapes from what the user has: a `config.json`, safetensors headers
//! (one file or a sharded folder), a GGUF header, the local Hugging Face Hub
//! cache, or the built-in catalog. Never the network, and never the weights:
//! readers stop at the headers.

pub mod catalog;
mod error;
pub mod gguf;
pub mod resolve;
pub mod safetensors;
pub mod shape;

pub use error::{ModelError, ModelErrorKind};
pub use shape::{
    Dtype, GgufLayout, LocalAttention, LocalAttentionKind, ModelKind, ModelShape, MoeShape,
};
