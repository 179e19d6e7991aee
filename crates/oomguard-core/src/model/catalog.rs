//! The built-in model catalog: popular models' `config.json` fields, written
//! down with their sources in `data/models.json` and compiled into the
//! binary, so `oomguard plan meta-llama/Llama-3.1-8B` works with no file and
//! no network. Names match case-insensitively, with or without the org.

use super::shape::{from_config, Dtype, ModelShape};
use super::{ModelError, ModelErrorKind};
use serde::Deserialize;
use std::sync::LazyLock;

/// One catalog entry as `data/models.json` writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogModel {
    /// The model's Hugging Face repo id (`org/name`).
    pub id: String,
    /// Other names the model is found by (short names, former repo ids).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The model's `config.json`, as the Hub serves it.
    pub config: serde_json::Value,
    /// Exact parameter count, when a source publishes it.
    pub params: Option<u64>,
    /// Where the parameter count comes from, or why there is none.
    pub params_source: Option<String>,
    /// Where the config comes from (a URL and the revision it was read at).
    pub config_source: String,
    /// The checkpoint's dtype when config.json does not state it.
    #[serde(default)]
    pub dtype: Option<String>,
    /// Where `dtype` comes from.
    #[serde(default)]
    pub dtype_source: Option<String>,
    /// The longest sequence when config.json has no position table
    /// (ALiBi, relative positions) or omits it.
    #[serde(default)]
    pub max_length: Option<u64>,
    /// Where `max_length` comes from.
    #[serde(default)]
    pub max_length_source: Option<String>,
}

static MODELS: LazyLock<Vec<CatalogModel>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../data/models.json"))
        .expect("data/models.json is valid (checked by tests)")
});

/// Every catalog entry, in file order.
pub fn models() -> &'static [CatalogModel] {
    &MODELS
}

fn normalize(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

fn short(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// Finds a catalog entry by id, short name (without the org) or alias.
pub fn find(name: &str) -> Option<&'static CatalogModel> {
    let n = normalize(name);
    let n_short = short(&n).to_string();
    MODELS.iter().find(|m| {
        let id = normalize(&m.id);
        id == n
            || short(&id) == n_short
            || m.aliases
                .iter()
                .any(|a| normalize(a) == n || normalize(a) == n_short)
    })
}

/// Loads a catalog model's shape.
pub fn shape(name: &str) -> Result<ModelShape, ModelError> {
    let entry = find(name).ok_or_else(|| {
        let near = suggestions(name, 3);
        let hint = if near.is_empty() {
            "run `oomguard models` for the list".to_string()
        } else {
            format!("did you mean {}? (`oomguard models` lists all)", near.join(", "))
        };
        ModelError::new(
            ModelErrorKind::NotFound,
            name,
            format!("not a path, not in the local Hugging Face cache, and not in the built-in catalog; {hint}"),
        )
    })?;
    let mut s = from_config(
        &entry.id,
        &entry.config,
        &format!("catalog entry {}", entry.id),
    )?;
    if let Some(p) = entry.params {
        s.params = p;
        s.params_exact = true;
    }
    if s.checkpoint_dtype.is_none() {
        s.checkpoint_dtype = entry.dtype.as_deref().and_then(Dtype::from_name);
    }
    if s.max_position_embeddings.is_none() {
        s.max_position_embeddings = entry.max_length;
    }
    Ok(s)
}

/// Catalog names closest to `name`: those containing it, then by edit
/// distance of the short names.
pub fn suggestions(name: &str, n: usize) -> Vec<String> {
    let q = normalize(short(name));
    let mut scored: Vec<(usize, &str)> = MODELS
        .iter()
        .map(|m| {
            let s = normalize(short(&m.id));
            let d = if s.contains(&q) || q.contains(&s) {
                0
            } else {
                strsim::levenshtein(&q, &s)
            };
            (d, m.id.as_str())
        })
        .filter(|(d, _)| *d <= q.len().max(4) / 2)
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(n)
        .map(|(_, id)| id.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_loads_and_has_a_source() {
        assert!(models().len() >= 40);
        for m in models() {
            let s = shape(&m.id).unwrap_or_else(|e| panic!("{}: {e}", m.id));
            assert!(s.params > 10_000_000, "{}: {} params", m.id, s.params);
            assert!(!m.config_source.is_empty(), "{} has no source", m.id);
        }
    }

    #[test]
    fn every_entry_has_its_dtype_and_max_length_with_a_source() {
        for m in models() {
            let s = shape(&m.id).unwrap();
            assert!(s.checkpoint_dtype.is_some(), "{} has no dtype", m.id);
            assert!(
                s.max_position_embeddings.is_some(),
                "{} has no max length",
                m.id
            );
            assert_eq!(m.dtype.is_some(), m.dtype_source.is_some(), "{}", m.id);
            assert_eq!(
                m.max_length.is_some(),
                m.max_length_source.is_some(),
                "{}",
                m.id
            );
        }
        // Half-precision checkpoints are not planned in fp32.
        for id in [
            "Llama-2-13b-hf",
            "Qwen3-30B-A3B",
            "gemma-2-9b-it",
            "Llama-3.1-70B",
        ] {
            assert_ne!(
                shape(id).unwrap().checkpoint_dtype,
                Some(Dtype::Fp32),
                "{id}"
            );
        }
    }

    #[test]
    fn todays_models_are_in_the_catalog() {
        for id in [
            "Llama-3.1-8B",
            "Llama-3.1-70B",
            "Llama-3.1-405B",
            "Llama-3.3-70B-Instruct",
            "Qwen2.5-7B-Instruct",
            "Qwen3-32B",
            "Qwen3-235B-A22B",
            "Mixtral-8x7B-Instruct-v0.1",
            "gemma-3-27b-it",
            "phi-4",
            "DeepSeek-V2-Lite-Chat",
            "DeepSeek-R1-Distill-Llama-8B",
        ] {
            assert!(find(id).is_some(), "{id}");
        }
    }

    #[test]
    fn names_match_without_org_and_case() {
        assert_eq!(
            find("bert-large-uncased").unwrap().id,
            "google-bert/bert-large-uncased"
        );
        assert_eq!(
            find("META-LLAMA/llama-3.1-8b").unwrap().id,
            "meta-llama/Llama-3.1-8B"
        );
        assert!(find("no-such-model").is_none());
    }

    #[test]
    fn unknown_names_get_near_suggestions() {
        let e = shape("llama-3.1-8").unwrap_err();
        assert!(e.to_string().contains("meta-llama/Llama-3.1-8B"), "{e}");
    }
}
