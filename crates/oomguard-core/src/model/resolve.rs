//! Turning the MODEL argument of `oomguard plan` into a shape, in the reference's (docs/reference.md)
//! order: a path (a model folder, a `config.json`, a `.safetensors` file, a
//! `.gguf` file), then a repo id in the local Hugging Face Hub cache, then the
//! built-in catalog. Nothing is fetched; weights are never read.

use super::shape::{from_config, Dtype, ModelShape};
use super::{catalog, gguf, safetensors, ModelError, ModelErrorKind};
use std::path::{Path, PathBuf};

/// Where the Hugging Face Hub cache lives: `HF_HUB_CACHE`, else
/// `HF_HOME/hub`, else `~/.cache/huggingface/hub` (huggingface_hub's own
/// resolution order, `constants.py`).
#[derive(Debug, Clone, Default)]
pub struct HubCache {
    /// The cache's directory; `None` when no variable points at one.
    pub root: Option<PathBuf>,
}

impl HubCache {
    /// The cache as the environment places it (`HF_HUB_CACHE`, `HF_HOME`, `HOME`).
    pub fn from_env() -> HubCache {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let root = var("HF_HUB_CACHE")
            .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
            .or_else(|| var("HOME").map(|h| h.join(".cache/huggingface/hub")));
        HubCache { root }
    }

    /// The snapshot folder of `repo_id` at `refs/main`, when cached.
    pub fn snapshot(&self, repo_id: &str) -> Option<PathBuf> {
        let root = self.root.as_ref()?;
        if !repo_id.contains('/') || repo_id.split('/').count() != 2 {
            return None;
        }
        let wanted = format!("models--{}", repo_id.replace('/', "--"));
        let dir = root.join(&wanted);
        let dir = if dir.is_dir() {
            dir
        } else {
            // Repo ids are case-insensitive on the Hub; folders keep the case
            // they were downloaded with.
            std::fs::read_dir(root)
                .ok()?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.eq_ignore_ascii_case(&wanted))
                })?
        };
        let rev = std::fs::read_to_string(dir.join("refs/main")).ok();
        let snapshots = dir.join("snapshots");
        match rev {
            Some(r) if snapshots.join(r.trim()).is_dir() => Some(snapshots.join(r.trim())),
            // No ref: the only (or newest) snapshot.
            _ => std::fs::read_dir(&snapshots)
                .ok()?
                .filter_map(Result::ok)
                .filter(|e| e.path().join("config.json").is_file())
                .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
                .map(|e| e.path()),
        }
    }
}

/// Where a shape came from, for the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A file or folder the user named (a config, a checkpoint, a GGUF file).
    Path(PathBuf),
    /// A snapshot folder in the Hugging Face Hub cache.
    HubCache(PathBuf),
    /// The built-in model catalog.
    Catalog,
}

/// Resolves MODEL to a shape.
pub fn resolve(name: &str, hub: &HubCache) -> Result<(ModelShape, ModelSource), ModelError> {
    let path = Path::new(name);
    if path.exists() {
        return Ok((
            from_path(path, name)?,
            ModelSource::Path(path.to_path_buf()),
        ));
    }
    let looks_like_path = name.starts_with('.')
        || name.starts_with('/')
        || name.starts_with('~')
        || [".json", ".safetensors", ".gguf"]
            .iter()
            .any(|x| name.ends_with(x));
    if looks_like_path {
        return Err(ModelError::new(
            ModelErrorKind::NotFound,
            name,
            "no such file or folder",
        ));
    }
    if let Some(snapshot) = hub.snapshot(name) {
        let mut shape = from_folder(&snapshot, name)?;
        shape.id = name.to_string();
        return Ok((shape, ModelSource::HubCache(snapshot)));
    }
    Ok((catalog::shape(name)?, ModelSource::Catalog))
}

fn from_path(path: &Path, input: &str) -> Result<ModelShape, ModelError> {
    if path.is_dir() {
        return from_folder(path, input);
    }
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if file_name.ends_with(".gguf") {
        return from_gguf(path, input);
    }
    if file_name.ends_with(".safetensors") {
        let header = safetensors::read_file(path)?;
        let summary = safetensors::summarize(std::slice::from_ref(&header));
        let config = path
            .parent()
            .map(|p| p.join("config.json"))
            .filter(|p| p.is_file());
        let mut shape = match config {
            Some(c) => read_config(&c, input)?,
            None => {
                return Err(ModelError::new(
                    ModelErrorKind::Unsupported,
                    input,
                    "a .safetensors file alone does not give the model's layers and heads: put its config.json beside it, or pass the folder",
                ))
            }
        };
        apply_checkpoint(&mut shape, &summary);
        return Ok(shape);
    }
    read_config(path, input)
}

fn read_config(path: &Path, input: &str) -> Result<ModelShape, ModelError> {
    let display = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| ModelError::io(&display, e))?;
    // A config.json is a few KiB; refuse to load something huge as one.
    if meta.len() > 16 << 20 {
        return Err(ModelError::malformed(
            &display,
            format!("{} bytes is too large for a config.json", meta.len()),
        ));
    }
    let text = std::fs::read(path).map_err(|e| ModelError::io(&display, e))?;
    let value: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| ModelError::malformed(&display, format!("not valid JSON: {e}")))?;
    let id = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or(input)
        .to_string();
    from_config(&id, &value, &display)
}

fn from_folder(dir: &Path, input: &str) -> Result<ModelShape, ModelError> {
    let config = dir.join("config.json");
    if !config.is_file() {
        let gguf = std::fs::read_dir(dir)
            .map_err(|e| ModelError::io(dir.display().to_string(), e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "gguf"));
        return match gguf {
            Some(g) => from_gguf(&g, input),
            None => Err(ModelError::new(
                ModelErrorKind::NotFound,
                dir.display().to_string(),
                "the folder has no config.json (nor a .gguf file)",
            )),
        };
    }
    let mut shape = read_config(&config, input)?;
    shape.id = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(input)
        .to_string();
    match safetensors::read_folder(dir) {
        Ok(summary) => apply_checkpoint(&mut shape, &summary),
        Err(e) if e.kind == ModelErrorKind::NotFound => {
            shape
                .notes
                .push("no safetensors in the folder: parameters computed from config.json".into());
        }
        Err(e) => return Err(e),
    }
    Ok(shape)
}

/// Takes the exact parameter count and dtype from checkpoint headers.
fn apply_checkpoint(shape: &mut ModelShape, summary: &safetensors::CheckpointSummary) {
    if summary.params == 0 {
        return;
    }
    shape.params = summary.params;
    shape.params_exact = true;
    let dominant = summary
        .params_by_dtype
        .iter()
        .max_by_key(|(_, n)| **n)
        .and_then(|(d, _)| Dtype::from_name(d));
    if let Some(d) = dominant {
        shape.checkpoint_dtype = Some(d);
    }
}

fn from_gguf(path: &Path, input: &str) -> Result<ModelShape, ModelError> {
    let file = gguf::read_file(path)?;
    let display = path.display().to_string();
    let arch = file
        .architecture()
        .ok_or_else(|| {
            ModelError::malformed(&display, "GGUF metadata has no general.architecture")
        })?
        .to_string();
    let need = |key: &str| {
        file.arch_u64(key).ok_or_else(|| {
            ModelError::malformed(&display, format!("GGUF metadata has no {arch}.{key}"))
        })
    };
    let hidden = need("embedding_length")?;
    let layers = need("block_count")?;
    let heads = need("attention.head_count")?;
    let kv_heads = file.arch_u64("attention.head_count_kv").unwrap_or(heads);
    let ff = file.arch_u64("feed_forward_length").unwrap_or(4 * hidden);
    let vocab = file
        .metadata
        .get("tokenizer.ggml.tokens")
        .and_then(|v| match v {
            gguf::GgufValue::Array { len, .. } => Some(*len),
            _ => None,
        })
        .or_else(|| file.arch_u64("vocab_size"))
        .unwrap_or(32000);
    let config = serde_json::json!({
        "model_type": if arch == "llama" { "llama".to_string() } else { arch.clone() },
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": ff,
        "vocab_size": vocab,
        "max_position_embeddings": file.arch_u64("context_length"),
        "head_dim": file.arch_u64("attention.key_length"),
        "num_local_experts": file.arch_u64("expert_count"),
        "num_experts_per_tok": file.arch_u64("expert_used_count"),
        "sliding_window": file.arch_u64("attention.sliding_window"),
    });
    // A tensor of a type this reader has no block layout for cannot be
    // sized: say which, rather than plan with a guess.
    if let Some(t) = file.tensors.iter().find(|t| t.bytes().is_none()) {
        return Err(ModelError::malformed(
            &display,
            format!(
                "tensor {} has ggml type {} ({}), whose size oomguard does not know",
                t.name,
                t.ggml_type,
                gguf::ggml_type_name(t.ggml_type).unwrap_or("unknown to ggml's type table")
            ),
        ));
    }
    let mut shape = from_config(input, &config, &display)?;
    let params: u64 = file.tensors.iter().filter_map(|t| t.elements()).sum();
    if params > 0 {
        shape.params = params;
        shape.params_exact = true;
    }
    shape.checkpoint_dtype = Some(Dtype::Fp16);
    shape.notes.push(format!(
        "GGUF ({}): weights sized from the file's own quantization types",
        arch
    ));
    shape.gguf_weights_bytes = file.tensors.iter().map(|t| t.bytes()).sum::<Option<u64>>();
    shape.gguf_layout = Some(gguf_layout(&file, layers));
    Ok(shape)
}

/// Sorts a GGUF file's tensor bytes by where llama.cpp puts them (tensor
/// names of llama.cpp's `llm_tensor` table: `token_embd`, `blk.N.*`,
/// `output`).
fn gguf_layout(file: &gguf::GgufFile, layers: u64) -> crate::model::GgufLayout {
    let mut layout = crate::model::GgufLayout {
        token_embd_bytes: 0,
        output_bytes: 0,
        layer_bytes: vec![0; layers.min(1 << 12) as usize],
        other_bytes: 0,
    };
    for t in &file.tensors {
        let bytes = t.bytes().unwrap_or(0);
        let block = t
            .name
            .strip_prefix("blk.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|n| n.parse::<usize>().ok());
        match block {
            Some(i) if i < layout.layer_bytes.len() => layout.layer_bytes[i] += bytes,
            _ if t.name.starts_with("token_embd") => layout.token_embd_bytes += bytes,
            _ if t.name == "output.weight" || t.name == "output.bias" => {
                layout.output_bytes += bytes
            }
            _ => layout.other_bytes += bytes,
        }
    }
    layout
}
