//! Safetensors headers: tensor names, dtypes and shapes read from the JSON
//! header of one `.safetensors` file or of a sharded checkpoint folder, and
//! the parameter and byte counts they add up to.
//!
//! This module reads the 8-byte length prefix and the header, never the tensor
//! data, so a 140 GB checkpoint costs a few kilobytes of I/O. It is not a
//! tensor loader, and it does not interpret `config.json` or tell which
//! tensors belong to which layer: it reports what the files store.
//!
//! The format (huggingface/safetensors, `safetensors/src/tensor.rs`): a
//! little-endian u64 `N`, then `N` bytes of UTF-8 JSON mapping each tensor name
//! to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to
//! the first byte after the header), plus an optional `"__metadata__"` object
//! of strings; then the data.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::{ModelError, ModelErrorKind};

/// Largest header the reference implementation accepts: `MAX_HEADER_SIZE =
/// 100_000_000` in huggingface/safetensors `safetensors/src/tensor.rs` (100 MB,
/// decimal, about 95.4 MiB). Checked before anything is allocated.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Name of the index file `transformers` writes next to sharded checkpoints.
pub const INDEX_FILE_NAME: &str = "model.safetensors.index.json";

/// Largest index file read; real ones are a few megabytes (one line per
/// tensor), so the header cap is generous here too.
const MAX_INDEX_BYTES: u64 = MAX_HEADER_BYTES;

/// The header key that holds free-form string metadata rather than a tensor.
const METADATA_KEY: &str = "__metadata__";

/// One tensor as its header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    pub name: String,
    /// The dtype as spelled in the file ("BF16", "F8_E4M3", "U8", ...).
    pub dtype: String,
    /// Dimensions, outermost first. Empty for a scalar.
    pub shape: Vec<u64>,
}

impl TensorEntry {
    /// Number of stored elements (product of the shape; 1 for a scalar), or
    /// `None` when the product overflows u64.
    ///
    /// This counts elements as stored, not the parameters they encode: a
    /// bitsandbytes 4-bit weight is a U8 tensor holding two weights per byte,
    /// and a GPTQ/AWQ `qweight` is an I32 tensor holding eight 4-bit weights
    /// per element, so quantized checkpoints count fewer "elements" than the
    /// model has parameters. Their byte counts are still exact.
    pub fn elements(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |product, &dim| product.checked_mul(dim))
    }

    /// Bytes the tensor occupies in the file, from its shape and dtype; `None`
    /// for an unknown dtype, an overflowing shape, or a sub-byte dtype whose
    /// elements do not fill whole bytes.
    pub fn bytes(&self) -> Option<u64> {
        let bits = self
            .elements()?
            .checked_mul(u64::from(dtype_bits(&self.dtype)?))?;
        (bits % 8 == 0).then_some(bits / 8)
    }
}

/// Bits per element of a safetensors dtype, or `None` for a dtype this table
/// does not know.
///
/// Source: `Dtype::bitsize` in huggingface/safetensors
/// `safetensors/src/tensor.rs` (0.6 and later; F4 and F6 pack several
/// elements per byte, C64 is two f32 parts).
pub fn dtype_bits(dtype: &str) -> Option<u32> {
    let bits = match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    };
    Some(bits)
}

/// The parsed header of one safetensors file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SafetensorsHeader {
    /// Every tensor in the header, sorted by name.
    pub tensors: Vec<TensorEntry>,
    /// The `"__metadata__"` object (often `{"format": "pt"}`); empty when absent.
    pub metadata: BTreeMap<String, String>,
}

/// Reads and checks the header of a safetensors file of `file_len` bytes from
/// `reader`, which must be positioned at the start of the file. Reads exactly
/// `8 + N` bytes, never the tensor data.
///
/// `input` names the file in errors. Every rejection is
/// [`ModelErrorKind::Malformed`] except a dtype this module does not know,
/// which is [`ModelErrorKind::Unsupported`].
pub fn parse_header<R: Read>(
    mut reader: R,
    file_len: u64,
    input: &str,
) -> Result<SafetensorsHeader, ModelError> {
    if file_len < 8 {
        return Err(ModelError::malformed(
            input,
            format!("the file is {file_len} bytes, shorter than the 8-byte header length"),
        ));
    }
    let mut prefix = [0u8; 8];
    read_prefix(&mut reader, &mut prefix, input)?;
    let header_len = u64::from_le_bytes(prefix);
    let after_prefix = file_len - 8;
    if header_len == 0 {
        return Err(ModelError::malformed(
            input,
            "the header length is 0; a safetensors header is at least `{}`",
        ));
    }
    if header_len > MAX_HEADER_BYTES {
        return Err(ModelError::malformed(
            input,
            format!(
                "the header length is {header_len} bytes, above the format's limit of \
                 {MAX_HEADER_BYTES} bytes; this is probably not a safetensors file"
            ),
        ));
    }
    if header_len > after_prefix {
        return Err(ModelError::malformed(
            input,
            format!(
                "the header length is {header_len} bytes but only {after_prefix} bytes follow \
                 the length prefix"
            ),
        ));
    }

    // Grows as bytes arrive rather than trusting `header_len` for a capacity:
    // a reader shorter than `file_len` then costs only what it holds.
    let mut header = Vec::new();
    (&mut reader)
        .take(header_len)
        .read_to_end(&mut header)
        .map_err(|err| ModelError::io(input, err))?;
    if (header.len() as u64) < header_len {
        return Err(ModelError::malformed(
            input,
            format!(
                "the file is truncated: it ends after {} of the header's {header_len} bytes",
                header.len()
            ),
        ));
    }

    let text = std::str::from_utf8(&header).map_err(|err| {
        ModelError::malformed(
            input,
            format!(
                "the header is not UTF-8 (invalid byte at header offset {})",
                err.valid_up_to()
            ),
        )
    })?;
    let json: Value = serde_json::from_str(text).map_err(|err| {
        ModelError::malformed(input, format!("the header is not valid JSON: {err}"))
    })?;
    let Value::Object(entries) = json else {
        return Err(ModelError::malformed(
            input,
            "the header is JSON but not an object mapping tensor names to tensors",
        ));
    };

    let data_len = after_prefix - header_len;
    let mut tensors = Vec::new();
    let mut metadata = BTreeMap::new();
    for (name, entry) in &entries {
        if name == METADATA_KEY {
            metadata = parse_metadata(entry, input)?;
        } else {
            tensors.push(parse_tensor(name, entry, data_len, input)?);
        }
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(SafetensorsHeader { tensors, metadata })
}

fn read_prefix<R: Read>(
    reader: &mut R,
    prefix: &mut [u8; 8],
    input: &str,
) -> Result<(), ModelError> {
    let mut got = 0;
    while got < prefix.len() {
        match reader.read(&mut prefix[got..]) {
            Ok(0) => {
                return Err(ModelError::malformed(
                    input,
                    format!(
                        "the file is truncated: it ends after {got} of the 8 header length bytes"
                    ),
                ))
            }
            Ok(n) => got += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(ModelError::io(input, err)),
        }
    }
    Ok(())
}

fn parse_metadata(entry: &Value, input: &str) -> Result<BTreeMap<String, String>, ModelError> {
    let Value::Object(fields) = entry else {
        return Err(ModelError::malformed(
            input,
            format!("\"{METADATA_KEY}\" is not an object of strings"),
        ));
    };
    fields
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), text.clone())),
            _ => Err(ModelError::malformed(
                input,
                format!("\"{METADATA_KEY}\" entry {key:?} is not a string"),
            )),
        })
        .collect()
}

fn parse_tensor(
    name: &str,
    entry: &Value,
    data_len: u64,
    input: &str,
) -> Result<TensorEntry, ModelError> {
    let malformed =
        |detail: String| ModelError::malformed(input, format!("tensor {name:?} {detail}"));
    let Value::Object(fields) = entry else {
        return Err(malformed("is not an object".into()));
    };
    let dtype = match fields.get("dtype") {
        None => return Err(malformed("has no \"dtype\"".into())),
        Some(Value::String(dtype)) => dtype.clone(),
        Some(other) => {
            return Err(malformed(format!(
                "has a \"dtype\" that is not a string: {other}"
            )))
        }
    };
    let shape = match fields.get("shape") {
        None => return Err(malformed("has no \"shape\"".into())),
        Some(value) => u64_list(value).ok_or_else(|| {
            malformed(format!(
                "has a \"shape\" that is not a list of non-negative integers: {value}"
            ))
        })?,
    };
    let (begin, end) = match fields.get("data_offsets") {
        None => return Err(malformed("has no \"data_offsets\"".into())),
        Some(value) => match u64_list(value).as_deref() {
            Some(&[begin, end]) => (begin, end),
            _ => {
                return Err(malformed(format!(
                    "has \"data_offsets\" {value}, not [begin, end]"
                )))
            }
        },
    };
    if begin > end {
        return Err(malformed(format!(
            "has data_offsets [{begin}, {end}], which begin after they end"
        )));
    }
    if end > data_len {
        return Err(malformed(format!(
            "ends at data byte {end}, past the end of the file's {data_len}-byte data section"
        )));
    }
    let tensor = TensorEntry {
        name: name.to_string(),
        dtype,
        shape,
    };
    let Some(bits) = dtype_bits(&tensor.dtype) else {
        return Err(ModelError::new(
            ModelErrorKind::Unsupported,
            input,
            format!(
                "tensor {name:?} has dtype {:?}, which oomguard does not know",
                tensor.dtype
            ),
        ));
    };
    let span = end - begin;
    match tensor.bytes() {
        Some(bytes) if bytes == span => Ok(tensor),
        Some(bytes) => Err(malformed(format!(
            "is {} {:?}, which is {bytes} bytes, but its data_offsets [{begin}, {end}] span {span} bytes",
            tensor.dtype, tensor.shape
        ))),
        None => Err(malformed(format!(
            "is {} {:?}: {} elements of {bits} bits do not make a whole number of bytes that fits in u64",
            tensor.dtype,
            tensor.shape,
            tensor
                .elements()
                .map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
        ))),
    }
}

fn u64_list(value: &Value) -> Option<Vec<u64>> {
    match value {
        Value::Array(items) => items.iter().map(Value::as_u64).collect(),
        _ => None,
    }
}

/// Reads the header of the safetensors file at `path`.
pub fn read_file(path: &Path) -> Result<SafetensorsHeader, ModelError> {
    let input = path.display().to_string();
    let file = File::open(path).map_err(|err| ModelError::io(&input, err))?;
    let file_len = file
        .metadata()
        .map_err(|err| ModelError::io(&input, err))?
        .len();
    parse_header(file, file_len, &input)
}

/// What a checkpoint (one or more safetensors files) stores, added up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckpointSummary {
    /// Stored elements over all tensors. Quantized checkpoints (bitsandbytes,
    /// GPTQ, AWQ) pack several weights into each U8/I32 element and are
    /// counted as stored; see [`TensorEntry::elements`].
    pub params: u64,
    /// Bytes of tensor data (shape x dtype size), excluding headers.
    pub bytes: u64,
    /// Stored elements per dtype as spelled in the files.
    pub params_by_dtype: BTreeMap<String, u64>,
    /// Number of safetensors files read.
    pub files: usize,
    /// Number of tensors over all files.
    pub tensors: usize,
}

/// Adds up the tensors of `headers`.
///
/// Headers from [`parse_header`] always have a known element and byte count
/// per tensor (it rejects the others). For hand-built entries whose count is
/// unknown (overflow, unknown dtype), sums saturate at `u64::MAX` rather than
/// pretending the tensor is empty.
pub fn summarize(headers: &[SafetensorsHeader]) -> CheckpointSummary {
    let mut summary = CheckpointSummary {
        files: headers.len(),
        ..CheckpointSummary::default()
    };
    for tensor in headers.iter().flat_map(|header| &header.tensors) {
        let elements = tensor.elements().unwrap_or(u64::MAX);
        let bytes = tensor.bytes().unwrap_or(u64::MAX);
        summary.tensors += 1;
        summary.params = summary.params.saturating_add(elements);
        summary.bytes = summary.bytes.saturating_add(bytes);
        let by_dtype = summary
            .params_by_dtype
            .entry(tensor.dtype.clone())
            .or_insert(0);
        *by_dtype = by_dtype.saturating_add(elements);
    }
    summary
}

/// Reads the headers of the checkpoint in folder `dir` and adds them up.
///
/// With a `model.safetensors.index.json`, reads each distinct shard its
/// `weight_map` names (an error names a missing shard). Without one, reads
/// every `*.safetensors` file in the folder, in file-name order; a folder
/// holding both a consolidated file and its shards but no index would be
/// counted twice. No index and no safetensors file is
/// [`ModelErrorKind::NotFound`].
pub fn read_folder(dir: &Path) -> Result<CheckpointSummary, ModelError> {
    let index_path = dir.join(INDEX_FILE_NAME);
    let shard_paths = if index_path.is_file() {
        shards_from_index(dir, &index_path)?
    } else {
        safetensors_in(dir)?
    };
    let headers = shard_paths
        .iter()
        .map(|path| read_file(path))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(summarize(&headers))
}

fn shards_from_index(dir: &Path, index_path: &Path) -> Result<Vec<std::path::PathBuf>, ModelError> {
    let input = index_path.display().to_string();
    let file = File::open(index_path).map_err(|err| ModelError::io(&input, err))?;
    let mut text = String::new();
    file.take(MAX_INDEX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|err| ModelError::io(&input, err))?;
    if text.len() as u64 > MAX_INDEX_BYTES {
        return Err(ModelError::malformed(
            &input,
            format!("the index is larger than {MAX_INDEX_BYTES} bytes"),
        ));
    }
    let json: Value = serde_json::from_str(&text).map_err(|err| {
        ModelError::malformed(&input, format!("the index is not valid JSON: {err}"))
    })?;
    let Some(Value::Object(weight_map)) = json.get("weight_map") else {
        return Err(ModelError::malformed(
            &input,
            "the index has no \"weight_map\" object mapping tensor names to shard files",
        ));
    };
    let mut shards = BTreeSet::new();
    for (tensor, shard) in weight_map {
        let Value::String(shard) = shard else {
            return Err(ModelError::malformed(
                &input,
                format!("\"weight_map\" maps tensor {tensor:?} to {shard}, not to a file name"),
            ));
        };
        // Shards sit next to the index; a path here would read outside the folder.
        if shard.is_empty() || Path::new(shard).file_name() != Some(std::ffi::OsStr::new(shard)) {
            return Err(ModelError::malformed(
                &input,
                format!("\"weight_map\" names shard {shard:?}, which is not a plain file name"),
            ));
        }
        shards.insert(shard.as_str());
    }
    if shards.is_empty() {
        return Err(ModelError::malformed(
            &input,
            "the index's \"weight_map\" is empty",
        ));
    }
    shards
        .into_iter()
        .map(|shard| {
            let path = dir.join(shard);
            if path.is_file() {
                Ok(path)
            } else {
                Err(ModelError::new(
                    ModelErrorKind::NotFound,
                    &input,
                    format!(
                        "the index names shard {shard:?}, which is not in {}",
                        dir.display()
                    ),
                ))
            }
        })
        .collect()
}

fn safetensors_in(dir: &Path) -> Result<Vec<std::path::PathBuf>, ModelError> {
    let input = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|err| ModelError::io(&input, err))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|err| ModelError::io(&input, err))?.path();
        // `is_file` follows symlinks: Hub cache snapshots link to blobs.
        if path.extension().is_some_and(|ext| ext == "safetensors") && path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(ModelError::new(
            ModelErrorKind::NotFound,
            input,
            format!("no {INDEX_FILE_NAME} and no *.safetensors file in this folder"),
        ));
    }
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// A safetensors file: the length prefix, `header`, then `data_len` bytes.
    fn file_with_header(header: &str, data_len: usize) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0xA5u8, data_len));
        bytes
    }

    /// A well-formed file holding `tensors` (name, dtype, shape) back to back.
    fn file_with_tensors(tensors: &[(&str, &str, Vec<u64>)], metadata: Option<Value>) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        if let Some(metadata) = metadata {
            header.insert(METADATA_KEY.into(), metadata);
        }
        let mut offset = 0u64;
        for (name, dtype, shape) in tensors {
            let entry = TensorEntry {
                name: name.to_string(),
                dtype: dtype.to_string(),
                shape: shape.clone(),
            };
            let end = offset + entry.bytes().unwrap();
            header.insert(
                name.to_string(),
                json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, end]}),
            );
            offset = end;
        }
        file_with_header(&Value::Object(header).to_string(), offset as usize)
    }

    fn parse(bytes: &[u8]) -> Result<SafetensorsHeader, ModelError> {
        parse_header(bytes, bytes.len() as u64, "test.safetensors")
    }

    fn malformed_detail(bytes: &[u8]) -> String {
        let err = parse(bytes).unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::Malformed, "{err}");
        err.detail
    }

    fn two_tensor_file() -> Vec<u8> {
        file_with_tensors(
            &[
                ("model.embed_tokens.weight", "BF16", vec![8, 4]),
                ("lm_head.weight", "F32", vec![8, 4]),
            ],
            Some(json!({"format": "pt"})),
        )
    }

    #[test]
    fn reads_two_tensors_and_metadata() {
        let header = parse(&two_tensor_file()).unwrap();
        assert_eq!(
            header.metadata.get("format").map(String::as_str),
            Some("pt")
        );
        assert_eq!(
            header.tensors,
            vec![
                TensorEntry {
                    name: "lm_head.weight".into(),
                    dtype: "F32".into(),
                    shape: vec![8, 4],
                },
                TensorEntry {
                    name: "model.embed_tokens.weight".into(),
                    dtype: "BF16".into(),
                    shape: vec![8, 4],
                },
            ]
        );
        let summary = summarize(&[header]);
        assert_eq!(summary.params, 64);
        assert_eq!(summary.bytes, 32 * 4 + 32 * 2);
        assert_eq!(summary.params_by_dtype.get("BF16"), Some(&32));
        assert_eq!(summary.params_by_dtype.get("F32"), Some(&32));
        assert_eq!((summary.files, summary.tensors), (1, 2));
    }

    #[test]
    fn reads_only_the_header_not_the_data() {
        let bytes = two_tensor_file();
        let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        // A reader holding only the prefix and header, with the real file length.
        let header = parse_header(&bytes[..header_end], bytes.len() as u64, "t").unwrap();
        assert_eq!(header.tensors.len(), 2);
    }

    #[test]
    fn scalars_empty_tensors_and_sub_byte_dtypes() {
        let bytes = file_with_tensors(
            &[
                ("scalar", "F64", vec![]),
                ("empty", "F16", vec![0, 7]),
                ("packed_fp4", "F4", vec![3, 2]),
            ],
            None,
        );
        let header = parse(&bytes).unwrap();
        assert!(header.metadata.is_empty());
        let summary = summarize(&[header]);
        assert_eq!(summary.params, 1 + 6);
        assert_eq!(summary.bytes, 8 + 3);
    }

    #[test]
    fn quantized_tensors_are_counted_as_stored() {
        // A GPTQ qweight for a 64x64 layer: eight 4-bit weights per I32.
        let bytes = file_with_tensors(&[("q.qweight", "I32", vec![8, 64])], None);
        let summary = summarize(&[parse(&bytes).unwrap()]);
        assert_eq!(summary.params, 512);
        assert_eq!(summary.bytes, 2048);
    }

    #[test]
    fn dtype_bits_follow_the_reference_table() {
        assert_eq!(dtype_bits("BF16"), Some(16));
        assert_eq!(dtype_bits("F8_E4M3"), Some(8));
        assert_eq!(dtype_bits("F4"), Some(4));
        assert_eq!(dtype_bits("C64"), Some(64));
        assert_eq!(dtype_bits("bf16"), None);
        assert_eq!(dtype_bits("Q4_K"), None);
    }

    #[test]
    fn elements_is_none_on_overflow() {
        let huge = TensorEntry {
            name: "x".into(),
            dtype: "F16".into(),
            shape: vec![u64::MAX, 2],
        };
        assert_eq!(huge.elements(), None);
        assert_eq!(huge.bytes(), None);
    }

    #[test]
    fn rejects_a_file_shorter_than_the_prefix() {
        assert!(malformed_detail(&[1, 0, 0]).contains("3 bytes"));
        // The caller's length is right but the reader ends early.
        let err = parse_header(&[1u8, 0, 0][..], 100, "t").unwrap_err();
        assert!(err.detail.contains("truncated"), "{err}");
    }

    #[test]
    fn rejects_a_zero_header_length() {
        let detail = malformed_detail(&file_with_header("", 16));
        assert!(detail.contains("header length is 0"), "{detail}");
    }

    #[test]
    fn rejects_a_2_pow_63_header_length_without_allocating() {
        let mut bytes = (1u64 << 63).to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        let started = std::time::Instant::now();
        let detail = malformed_detail(&bytes);
        assert!(detail.contains("9223372036854775808"), "{detail}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Same with a file length claiming the header would fit.
        let err = parse_header(&bytes[..], u64::MAX, "t").unwrap_err();
        assert!(err.detail.contains("limit"), "{err}");
    }

    #[test]
    fn rejects_a_header_above_the_format_limit() {
        let mut bytes = (MAX_HEADER_BYTES + 1).to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        let err = parse_header(&bytes[..], 1 << 40, "t").unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::Malformed);
        assert!(
            err.detail.contains("100000001") && err.detail.contains("limit"),
            "{err}"
        );
    }

    #[test]
    fn rejects_a_header_longer_than_the_file() {
        let mut bytes = 500u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        let detail = malformed_detail(&bytes);
        assert!(
            detail.contains("500") && detail.contains("only 2 bytes"),
            "{detail}"
        );
    }

    #[test]
    fn rejects_a_truncated_header() {
        let bytes = two_tensor_file();
        // The caller says the file is complete; the reader ends inside the header.
        let err = parse_header(&bytes[..20], bytes.len() as u64, "t").unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::Malformed);
        assert!(
            err.detail.contains("truncated") && err.detail.contains("after 12 of"),
            "{err}"
        );
    }

    #[test]
    fn rejects_a_header_that_is_not_utf8() {
        let mut bytes = file_with_header("{\"a\": \"xx\"}", 0);
        bytes[8 + 8] = 0xFF;
        let detail = malformed_detail(&bytes);
        assert!(
            detail.contains("not UTF-8") && detail.contains("offset 8"),
            "{detail}"
        );
    }

    #[test]
    fn rejects_invalid_json_and_non_objects() {
        assert!(malformed_detail(&file_with_header("{\"a\": ", 0)).contains("not valid JSON"));
        assert!(malformed_detail(&file_with_header("[1, 2]", 0)).contains("not an object"));
    }

    #[test]
    fn rejects_a_tensor_without_dtype_or_shape_or_offsets() {
        let no_dtype = r#"{"w": {"shape": [2], "data_offsets": [0, 4]}}"#;
        assert!(malformed_detail(&file_with_header(no_dtype, 4)).contains("\"w\" has no \"dtype\""));
        let no_shape = r#"{"w": {"dtype": "F16", "data_offsets": [0, 4]}}"#;
        assert!(malformed_detail(&file_with_header(no_shape, 4)).contains("\"w\" has no \"shape\""));
        let no_offsets = r#"{"w": {"dtype": "F16", "shape": [2]}}"#;
        assert!(malformed_detail(&file_with_header(no_offsets, 4)).contains("no \"data_offsets\""));
        let bad_shape = r#"{"w": {"dtype": "F16", "shape": [-2], "data_offsets": [0, 4]}}"#;
        assert!(malformed_detail(&file_with_header(bad_shape, 4)).contains("non-negative"));
        let bad_dtype = r#"{"w": {"dtype": 16, "shape": [2], "data_offsets": [0, 4]}}"#;
        assert!(malformed_detail(&file_with_header(bad_dtype, 4)).contains("not a string"));
    }

    #[test]
    fn rejects_data_offsets_beyond_the_file() {
        let header = r#"{"w": {"dtype": "F16", "shape": [8], "data_offsets": [0, 16]}}"#;
        let detail = malformed_detail(&file_with_header(header, 10));
        assert!(
            detail.contains("data byte 16") && detail.contains("10-byte"),
            "{detail}"
        );
    }

    #[test]
    fn rejects_data_offsets_inconsistent_with_shape_and_dtype() {
        let header = r#"{"w": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 10]}}"#;
        let detail = malformed_detail(&file_with_header(header, 10));
        assert!(
            detail.contains("12 bytes") && detail.contains("span 10"),
            "{detail}"
        );
        let reversed = r#"{"w": {"dtype": "F16", "shape": [2], "data_offsets": [4, 0]}}"#;
        assert!(malformed_detail(&file_with_header(reversed, 4)).contains("begin after"));
        let three = r#"{"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4, 8]}}"#;
        assert!(malformed_detail(&file_with_header(three, 8)).contains("not [begin, end]"));
        let overflow = r#"{"w": {"dtype": "F16", "shape": [18446744073709551615, 2], "data_offsets": [0, 4]}}"#;
        assert!(malformed_detail(&file_with_header(overflow, 4)).contains("more than 2^64"));
        let half_byte = r#"{"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}"#;
        assert!(malformed_detail(&file_with_header(half_byte, 2)).contains("whole number of bytes"));
    }

    #[test]
    fn rejects_bad_metadata() {
        let header = r#"{"__metadata__": {"format": 1}}"#;
        assert!(
            malformed_detail(&file_with_header(header, 0)).contains("\"format\" is not a string")
        );
    }

    #[test]
    fn an_unknown_dtype_is_unsupported() {
        let header = r#"{"w": {"dtype": "Q4_K", "shape": [32], "data_offsets": [0, 18]}}"#;
        let err = parse(&file_with_header(header, 18)).unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::Unsupported);
        assert!(err.detail.contains("\"Q4_K\""), "{err}");
    }

    /// A fresh empty folder under the system temp dir, removed on drop.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
            let path = std::env::temp_dir().join(format!(
                "oomguard-safetensors-{label}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        fn write(&self, name: &str, bytes: &[u8]) {
            std::fs::write(self.0.join(name), bytes).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn shard(name: &str, rows: u64) -> Vec<u8> {
        file_with_tensors(&[(name, "BF16", vec![rows, 4])], None)
    }

    #[test]
    fn folder_with_an_index_reads_each_distinct_shard() {
        let dir = TempDir::new("index");
        dir.write("model-00001-of-00002.safetensors", &shard("a", 2));
        dir.write("model-00002-of-00002.safetensors", &shard("b", 3));
        // Not named by the index, so not read.
        dir.write("consolidated.safetensors", &shard("c", 100));
        let index = json!({
            "metadata": {"total_size": 40},
            "weight_map": {
                "a": "model-00001-of-00002.safetensors",
                "b": "model-00002-of-00002.safetensors",
                "b2": "model-00002-of-00002.safetensors",
            }
        });
        dir.write(INDEX_FILE_NAME, index.to_string().as_bytes());
        let summary = read_folder(&dir.0).unwrap();
        assert_eq!((summary.files, summary.tensors, summary.params), (2, 2, 20));
        assert_eq!(summary.bytes, 40);
    }

    #[test]
    fn folder_index_naming_a_missing_shard_is_an_error() {
        let dir = TempDir::new("missing-shard");
        dir.write("model-00001-of-00002.safetensors", &shard("a", 2));
        let index = json!({"weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }});
        dir.write(INDEX_FILE_NAME, index.to_string().as_bytes());
        let err = read_folder(&dir.0).unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::NotFound);
        assert!(
            err.detail.contains("model-00002-of-00002.safetensors"),
            "{err}"
        );
    }

    #[test]
    fn folder_index_must_name_plain_files() {
        let dir = TempDir::new("escape");
        dir.write(
            INDEX_FILE_NAME,
            br#"{"weight_map": {"a": "../elsewhere.safetensors"}}"#,
        );
        let err = read_folder(&dir.0).unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::Malformed);
        assert!(err.detail.contains("plain file name"), "{err}");
        dir.write(INDEX_FILE_NAME, br#"{"metadata": {}}"#);
        assert!(read_folder(&dir.0)
            .unwrap_err()
            .detail
            .contains("weight_map"));
    }

    #[test]
    fn folder_without_an_index_reads_every_safetensors_file() {
        let dir = TempDir::new("no-index");
        dir.write("b.safetensors", &shard("b", 3));
        dir.write("a.safetensors", &shard("a", 2));
        dir.write("README.md", b"not a checkpoint");
        let summary = read_folder(&dir.0).unwrap();
        assert_eq!((summary.files, summary.tensors, summary.params), (2, 2, 20));
        // A bad file names itself.
        dir.write("c.safetensors", &[0u8; 4]);
        let err = read_folder(&dir.0).unwrap_err();
        assert!(err.input.ends_with("c.safetensors"), "{err}");
    }

    #[test]
    fn folder_without_safetensors_is_not_found() {
        let dir = TempDir::new("empty");
        dir.write("config.json", b"{}");
        let err = read_folder(&dir.0).unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::NotFound);
        let err = read_folder(&dir.0.join("absent")).unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::NotFound);
    }

    #[test]
    fn read_file_reads_a_file_on_disk() {
        let dir = TempDir::new("one-file");
        dir.write("model.safetensors", &two_tensor_file());
        let header = read_file(&dir.0.join("model.safetensors")).unwrap();
        assert_eq!(header.tensors.len(), 2);
        let err = read_file(&dir.0.join("absent.safetensors")).unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::NotFound);
    }

    const DTYPES: &[&str] = &[
        "F32", "F16", "BF16", "F8_E4M3", "I8", "U8", "I32", "I64", "F64", "BOOL", "F4",
    ];

    fn arbitrary_tensors() -> impl Strategy<Value = Vec<(String, String, Vec<u64>)>> {
        proptest::collection::vec(
            (
                proptest::sample::select(DTYPES),
                proptest::collection::vec(0u64..6, 0..4).prop_map(|mut shape| {
                    // F4 needs an even element count to fill whole bytes.
                    shape.push(2);
                    shape
                }),
            ),
            0..6,
        )
        .prop_map(|tensors| {
            tensors
                .into_iter()
                .enumerate()
                .map(|(i, (dtype, shape))| (format!("layers.{i}.weight"), dtype.to_string(), shape))
                .collect()
        })
    }

    fn build(tensors: &[(String, String, Vec<u64>)]) -> Vec<u8> {
        let borrowed: Vec<(&str, &str, Vec<u64>)> = tensors
            .iter()
            .map(|(name, dtype, shape)| (name.as_str(), dtype.as_str(), shape.clone()))
            .collect();
        file_with_tensors(&borrowed, Some(json!({"format": "pt"})))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), claimed in any::<u64>()) {
            let _ = parse(&bytes);
            let _ = parse_header(&bytes[..], claimed, "t");
        }

        #[test]
        fn arbitrary_json_headers_never_panic(header in "[{}\\[\\]\":,0-9a-z_ ]{0,80}", data_len in 0usize..64) {
            let _ = parse(&file_with_header(&header, data_len));
        }

        #[test]
        fn valid_files_round_trip_their_tensors(tensors in arbitrary_tensors()) {
            let header = parse(&build(&tensors)).unwrap();
            let mut expected: Vec<TensorEntry> = tensors
                .iter()
                .map(|(name, dtype, shape)| TensorEntry { name: name.clone(), dtype: dtype.clone(), shape: shape.clone() })
                .collect();
            expected.sort_by(|a, b| a.name.cmp(&b.name));
            prop_assert_eq!(header.tensors, expected);
        }

        #[test]
        fn any_truncation_is_an_error(tensors in arbitrary_tensors(), cut in any::<prop::sample::Index>()) {
            let bytes = build(&tensors);
            let cut = cut.index(bytes.len());
            let truncated = &bytes[..cut];
            prop_assert!(parse(truncated).is_err());
            // Also when the caller still reports the full length.
            prop_assert!(parse_header(truncated, bytes.len() as u64, "t").is_err() || cut >= bytes.len() - data_section_len(&bytes));
        }
    }

    fn data_section_len(bytes: &[u8]) -> usize {
        bytes.len() - 8 - u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
    }
}
