//! Model shapes from what the user has: a `config.json`, safetensors headers
//! (one file or a sharded folder), a GGUF header, the local Hugging Face Hub
//! cache, or the built-in catalog. Never the network, and never the weights:
//! readers stop at the headers.

pub mod catalog;
mod error;
pub(crate) mod gguf;
mod resolve;
mod safetensors;
pub(crate) mod shape;

pub use catalog::CatalogModel;
pub use error::{ModelError, ModelErrorKind};
pub use resolve::{resolve, HubCache, ModelSource};
pub use shape::{
    from_config, Dtype, GgufLayout, LocalAttention, LocalAttentionKind, ModelKind, ModelShape,
    MoeShape, Rotary,
};
