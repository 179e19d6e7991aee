//! GGUF headers: the metadata (architecture, layer count, widths, context
//! length) and the tensor list (name, dimensions, ggml type) of a llama.cpp
//! model file, and the bytes each tensor takes in its quantized form.
//!
//! This module reads the header sequentially and stops before the tensor
//! data: it never seeks to or reads the weights. It is not a GGUF writer or a
//! tokenizer loader: arrays keep only their first [`ARRAY_HEAD_LEN`] elements
//! (a vocabulary of 150k strings is skipped, not stored).
//!
//! Layout (llama.cpp `docs/gguf.md` and `ggml/src/gguf.cpp`, versions 2 and
//! 3, little-endian): magic `GGUF`, u32 version, u64 tensor count, u64
//! metadata count, the metadata entries (string key, u32 value type, value),
//! then per tensor: name, u32 dimension count, u64 dimensions (innermost
//! first), u32 ggml type, u64 data offset. A string is a u64 length and that
//! many bytes.
//!
//! Corrupt input costs bounded memory: counts and lengths read from the file
//! are capped and never used to pre-allocate, and a truncated file is
//! reported with the byte where it ends.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{ModelError, ModelErrorKind};

/// Array elements kept per metadata array; the rest are read past.
pub const ARRAY_HEAD_LEN: usize = 16;

/// Most tensors accepted. Large mixture-of-experts GGUFs hold a few thousand
/// (experts are merged into one tensor per layer), so this only stops garbage.
const MAX_TENSORS: u64 = 1_000_000;

/// Most metadata entries accepted; real files hold a few dozen.
const MAX_METADATA_ENTRIES: u64 = 100_000;

/// Longest string stored. ggml itself allows 1 GiB (`GGUF_MAX_STRING_LENGTH`
/// in `ggml/src/gguf.cpp`); the longest real values, chat templates, are tens
/// of kilobytes.
const MAX_STRING_BYTES: u64 = 16 * 1024 * 1024;

/// Most dimensions per tensor accepted. ggml uses 4 (`GGML_MAX_DIMS`) and
/// rejects more; 8 leaves room for other writers without trusting garbage.
const MAX_DIMS: u32 = 8;

/// One metadata value. Integers of every width are widened to 64 bits.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// i8, i16, i32 or i64.
    Int(i64),
    /// u8, u16, u32 or u64.
    UInt(u64),
    /// f32 or f64.
    Float(f64),
    Bool(bool),
    Str(String),
    /// An array of `len` elements of GGUF value type `elem_type`, of which
    /// only the first [`ARRAY_HEAD_LEN`] are kept in `head`.
    Array {
        elem_type: u32,
        len: u64,
        head: Vec<GgufValue>,
    },
}

impl GgufValue {
    /// The value as an unsigned integer, when it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::UInt(value) => Some(value),
            GgufValue::Int(value) => u64::try_from(value).ok(),
            _ => None,
        }
    }

    /// The value as text, when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::Str(text) => Some(text),
            _ => None,
        }
    }
}

/// One tensor as the header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensor {
    pub name: String,
    /// Dimensions in ggml order: innermost (row length) first, the reverse
    /// of the PyTorch shape.
    pub dims: Vec<u64>,
    /// The ggml type id (`enum ggml_type`); see [`ggml_type_name`].
    pub ggml_type: u32,
}

impl GgufTensor {
    /// Number of elements (product of the dimensions), or `None` on overflow.
    pub fn elements(&self) -> Option<u64> {
        self.dims
            .iter()
            .try_fold(1u64, |product, &dim| product.checked_mul(dim))
    }

    /// Bytes of the tensor's data: whole blocks of its ggml type. `None` for a
    /// type without a known block layout, a row length that is not a whole
    /// number of blocks (ggml rejects such tensors), or an overflow.
    pub fn bytes(&self) -> Option<u64> {
        let (block_elements, block_bytes) = ggml_block_layout(self.ggml_type)?;
        let row_len = self.dims.first().copied().unwrap_or(1);
        if row_len % block_elements != 0 {
            return None;
        }
        (self.elements()? / block_elements).checked_mul(block_bytes)
    }
}

/// Elements per block and bytes per block of a ggml type, or `None` for an
/// unknown or removed type id.
///
/// Source: `type_traits[GGML_TYPE_COUNT]` in ggml-org/llama.cpp
/// `ggml/src/ggml.c` (`.blck_size`, `.type_size = sizeof(block_...)`), with the
/// block structs of `ggml/src/ggml-common.h` summed by hand (`ggml_half` is 2
/// bytes; `QK_K` = 256), and ids from `enum ggml_type` in
/// `ggml/include/ggml.h` (read at llama.cpp commits 00bdaa10 for `ggml.c`
/// and 01243c58 for `ggml-common.h`). Ids 4, 5 (Q4_2, Q4_3), 31-33
/// (Q4_0_4_4 ...) and 36-38 (IQ4_NL_4_4 ...) were removed and have block size
/// 0 there. MXFP4 (39, gpt-oss), NVFP4 (40) and Q1_0 (41) are recent additions.
pub fn ggml_block_layout(ggml_type: u32) -> Option<(u64, u64)> {
    let layout = match ggml_type {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0: d f16 + 16 bytes of nibbles
        3 => (32, 20),    // Q4_1: d, m f16 + 16
        6 => (32, 22),    // Q5_0: d + qh[4] + 16
        7 => (32, 24),    // Q5_1: d, m + qh[4] + 16
        8 => (32, 34),    // Q8_0: d + 32
        9 => (32, 36),    // Q8_1: d, s + 32
        10 => (256, 84),  // Q2_K: scales[16] + qs[64] + d, dmin
        11 => (256, 110), // Q3_K: hmask[32] + qs[64] + scales[12] + d
        12 => (256, 144), // Q4_K: d, dmin + scales[12] + qs[128]
        13 => (256, 176), // Q5_K: d, dmin + scales[12] + qh[32] + qs[128]
        14 => (256, 210), // Q6_K: ql[128] + qh[64] + scales[16] + d
        15 => (256, 292), // Q8_K: d f32 + qs[256] + bsums[16] i16
        16 => (256, 66),  // IQ2_XXS: d + qs[32] u16
        17 => (256, 74),  // IQ2_XS: d + qs[32] u16 + scales[8]
        18 => (256, 98),  // IQ3_XXS: d + qs[96]
        19 => (256, 50),  // IQ1_S: d + qs[32] + qh[8] u16
        20 => (32, 18),   // IQ4_NL: d + qs[16]
        21 => (256, 110), // IQ3_S: d + qs[64] + qh[8] + signs[32] + scales[4]
        22 => (256, 82),  // IQ2_S: d + qs[64] + qh[8] + scales[8]
        23 => (256, 136), // IQ4_XS: d + scales_h u16 + scales_l[4] + qs[128]
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        29 => (256, 56),  // IQ1_M: qs[32] + qh[16] + scales[8]
        30 => (1, 2),     // BF16
        34 => (256, 54),  // TQ1_0: qs[48] + qh[4] + d
        35 => (256, 66),  // TQ2_0: qs[64] + d
        39 => (32, 17),   // MXFP4: e (E8M0) + qs[16]
        40 => (64, 36),   // NVFP4: d[4] (UE4M3) + qs[32]
        41 => (128, 18),  // Q1_0: d + qs[16]
        _ => return None,
    };
    Some(layout)
}

/// ggml's name for a type id, as `ggml_type_name` prints it ("q4_K", "bf16"),
/// or `None` for an unknown or removed id. Source as for [`ggml_block_layout`].
pub fn ggml_type_name(ggml_type: u32) -> Option<&'static str> {
    let name = match ggml_type {
        0 => "f32",
        1 => "f16",
        2 => "q4_0",
        3 => "q4_1",
        6 => "q5_0",
        7 => "q5_1",
        8 => "q8_0",
        9 => "q8_1",
        10 => "q2_K",
        11 => "q3_K",
        12 => "q4_K",
        13 => "q5_K",
        14 => "q6_K",
        15 => "q8_K",
        16 => "iq2_xxs",
        17 => "iq2_xs",
        18 => "iq3_xxs",
        19 => "iq1_s",
        20 => "iq4_nl",
        21 => "iq3_s",
        22 => "iq2_s",
        23 => "iq4_xs",
        24 => "i8",
        25 => "i16",
        26 => "i32",
        27 => "i64",
        28 => "f64",
        29 => "iq1_m",
        30 => "bf16",
        34 => "tq1_0",
        35 => "tq2_0",
        39 => "mxfp4",
        40 => "nvfp4",
        41 => "q1_0",
        _ => return None,
    };
    Some(name)
}

/// The parsed header of a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    /// 2 or 3.
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    /// Tensors in file order.
    pub tensors: Vec<GgufTensor>,
}

impl GgufFile {
    /// The `general.architecture` value ("llama", "qwen2", ...).
    pub fn architecture(&self) -> Option<&str> {
        self.metadata.get("general.architecture")?.as_str()
    }

    /// The integer at `{architecture}.{key}`, e.g. `arch_u64("block_count")`
    /// reads `llama.block_count`. Other keys: `embedding_length`,
    /// `feed_forward_length`, `context_length`, `attention.head_count`,
    /// `attention.head_count_kv`. `None` when absent, not a non-negative
    /// integer, or an array (some models store per-layer head counts).
    pub fn arch_u64(&self, key: &str) -> Option<u64> {
        let arch = self.architecture()?;
        self.metadata.get(&format!("{arch}.{key}"))?.as_u64()
    }
}

/// Reads the file at `path` through a buffered reader, sequentially, up to
/// the end of the tensor list.
pub fn read_file(path: &Path) -> Result<GgufFile, ModelError> {
    let input = path.display().to_string();
    let file = File::open(path).map_err(|err| ModelError::io(&input, err))?;
    parse(BufReader::new(file), &input)
}

/// Parses a GGUF header from `reader`, positioned at the start of the file.
/// Reads up to the end of the tensor list and no further.
///
/// `input` names the file in errors. A version other than 2 or 3 is
/// [`ModelErrorKind::Unsupported`]; everything else wrong is
/// [`ModelErrorKind::Malformed`], a short file as "truncated at byte N while
/// reading X".
pub fn parse<R: Read>(reader: R, input: &str) -> Result<GgufFile, ModelError> {
    let mut r = HeaderReader {
        inner: reader,
        pos: 0,
        input,
    };

    let mut magic = [0u8; 4];
    r.fill(&mut magic, "the magic")?;
    if &magic != b"GGUF" {
        return Err(r.malformed(format!(
            "starts with \"{}\", not the GGUF magic \"GGUF\"",
            magic.escape_ascii()
        )));
    }
    let version = r.u32("the version")?;
    if version != 2 && version != 3 {
        let hint = if matches!(version.swap_bytes(), 2 | 3) {
            " (a big-endian GGUF?)"
        } else if version == 1 {
            " (GGUF v1 is no longer read by llama.cpp either)"
        } else {
            ""
        };
        return Err(ModelError::new(
            ModelErrorKind::Unsupported,
            input,
            format!("GGUF version {version}{hint}; oomguard reads versions 2 and 3"),
        ));
    }
    let tensor_count = r.u64("the tensor count")?;
    if tensor_count > MAX_TENSORS {
        return Err(r.malformed(format!(
            "the header claims {tensor_count} tensors, more than the {MAX_TENSORS} accepted"
        )));
    }
    let kv_count = r.u64("the metadata count")?;
    if kv_count > MAX_METADATA_ENTRIES {
        return Err(r.malformed(format!(
            "the header claims {kv_count} metadata entries, more than the {MAX_METADATA_ENTRIES} accepted"
        )));
    }

    let mut metadata = BTreeMap::new();
    for index in 0..kv_count {
        let key = r.string(&format!("the key of metadata entry {index}"))?;
        let what = format!("the value of {key:?}");
        let value_type = r.u32(&what)?;
        let value = read_value(&mut r, value_type, &what)?;
        if metadata.contains_key(&key) {
            return Err(r.malformed(format!("metadata key {key:?} appears twice")));
        }
        metadata.insert(key, value);
    }

    let mut tensors = Vec::new();
    for index in 0..tensor_count {
        let name = r.string(&format!("the name of tensor {index}"))?;
        let what = format!("the shape of tensor {name:?}");
        let n_dims = r.u32(&what)?;
        if n_dims > MAX_DIMS {
            return Err(r.malformed(format!(
                "tensor {name:?} has {n_dims} dimensions, more than the {MAX_DIMS} accepted"
            )));
        }
        let mut dims = Vec::new();
        for _ in 0..n_dims {
            dims.push(r.u64(&what)?);
        }
        let ggml_type = r.u32(&format!("the type of tensor {name:?}"))?;
        // The data offset is read past: nothing here follows it.
        r.u64(&format!("the data offset of tensor {name:?}"))?;
        tensors.push(GgufTensor {
            name,
            dims,
            ggml_type,
        });
    }

    Ok(GgufFile {
        version,
        metadata,
        tensors,
    })
}

/// GGUF value type ids (`enum gguf_type` in `ggml/include/gguf.h`).
mod gguf_type {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// Bytes of one element of a fixed-size value type; `None` for strings,
/// arrays and unknown ids.
fn fixed_size(value_type: u32) -> Option<u64> {
    match value_type {
        gguf_type::U8 | gguf_type::I8 | gguf_type::BOOL => Some(1),
        gguf_type::U16 | gguf_type::I16 => Some(2),
        gguf_type::U32 | gguf_type::I32 | gguf_type::F32 => Some(4),
        gguf_type::U64 | gguf_type::I64 | gguf_type::F64 => Some(8),
        _ => None,
    }
}

fn read_value<R: Read>(
    r: &mut HeaderReader<'_, R>,
    value_type: u32,
    what: &str,
) -> Result<GgufValue, ModelError> {
    if value_type == gguf_type::ARRAY {
        read_array(r, what)
    } else {
        read_scalar(r, value_type, what)
    }
}

fn read_scalar<R: Read>(
    r: &mut HeaderReader<'_, R>,
    value_type: u32,
    what: &str,
) -> Result<GgufValue, ModelError> {
    let value = match value_type {
        gguf_type::U8 => GgufValue::UInt(u64::from(r.array::<1>(what)?[0])),
        gguf_type::I8 => GgufValue::Int(i64::from(i8::from_le_bytes(r.array(what)?))),
        gguf_type::U16 => GgufValue::UInt(u64::from(u16::from_le_bytes(r.array(what)?))),
        gguf_type::I16 => GgufValue::Int(i64::from(i16::from_le_bytes(r.array(what)?))),
        gguf_type::U32 => GgufValue::UInt(u64::from(r.u32(what)?)),
        gguf_type::I32 => GgufValue::Int(i64::from(i32::from_le_bytes(r.array(what)?))),
        gguf_type::F32 => GgufValue::Float(f64::from(f32::from_le_bytes(r.array(what)?))),
        // ggml reads a bool as an int8 and treats any non-zero as true.
        gguf_type::BOOL => GgufValue::Bool(r.array::<1>(what)?[0] != 0),
        gguf_type::STRING => GgufValue::Str(r.string(what)?),
        gguf_type::U64 => GgufValue::UInt(r.u64(what)?),
        gguf_type::I64 => GgufValue::Int(i64::from_le_bytes(r.array(what)?)),
        gguf_type::F64 => GgufValue::Float(f64::from_le_bytes(r.array(what)?)),
        _ => {
            return Err(r.malformed(format!(
                "unknown value type {value_type} in {what} (known types are 0 to 12)"
            )))
        }
    };
    Ok(value)
}

fn read_array<R: Read>(r: &mut HeaderReader<'_, R>, what: &str) -> Result<GgufValue, ModelError> {
    let elem_type = r.u32(what)?;
    if elem_type == gguf_type::ARRAY {
        // ggml's reader rejects these too (`gguf_init_from_reader`).
        return Err(ModelError::new(
            ModelErrorKind::Unsupported,
            r.input,
            format!("{what} is an array of arrays, which llama.cpp does not read either"),
        ));
    }
    if elem_type > gguf_type::F64 {
        return Err(r.malformed(format!(
            "unknown array element type {elem_type} in {what} (known types are 0 to 12)"
        )));
    }
    let len = r.u64(what)?;
    let kept = len.min(ARRAY_HEAD_LEN as u64);
    let mut head = Vec::new();
    for _ in 0..kept {
        head.push(read_scalar(r, elem_type, what)?);
    }
    let rest = len - kept;
    match fixed_size(elem_type) {
        Some(size) => {
            let bytes = rest.checked_mul(size).ok_or_else(|| {
                r.malformed(format!(
                    "{what} claims {len} elements, more than any file holds"
                ))
            })?;
            r.skip(bytes, what)?;
        }
        None => {
            // Strings: each ends where its length says; a garbage length runs
            // into the end of the file, so this loop ends with the input.
            for _ in 0..rest {
                let len = r.u64(what)?;
                r.skip(len, what)?;
            }
        }
    }
    Ok(GgufValue::Array {
        elem_type,
        len,
        head,
    })
}

/// A reader that knows its position, so errors can say where the file ended.
struct HeaderReader<'a, R> {
    inner: R,
    /// Bytes consumed so far.
    pos: u64,
    input: &'a str,
}

impl<R: Read> HeaderReader<'_, R> {
    fn malformed(&self, detail: String) -> ModelError {
        ModelError::malformed(self.input, detail)
    }

    fn truncated(&self, what: &str) -> ModelError {
        self.malformed(format!(
            "truncated at byte {} while reading {what}",
            self.pos
        ))
    }

    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<(), ModelError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => return Err(self.truncated(what)),
                Ok(n) => {
                    got += n;
                    self.pos += n as u64;
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(ModelError::io(self.input, err)),
            }
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ModelError> {
        let mut buf = [0u8; N];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads `len` bytes into a buffer that grows as they arrive.
    fn bytes(&mut self, len: u64, what: &str) -> Result<Vec<u8>, ModelError> {
        let mut buf = Vec::new();
        let got = (&mut self.inner)
            .take(len)
            .read_to_end(&mut buf)
            .map_err(|err| ModelError::io(self.input, err))?;
        self.pos += got as u64;
        if (got as u64) < len {
            return Err(self.truncated(what));
        }
        Ok(buf)
    }

    fn skip(&mut self, len: u64, what: &str) -> Result<(), ModelError> {
        let got = std::io::copy(&mut (&mut self.inner).take(len), &mut std::io::sink())
            .map_err(|err| ModelError::io(self.input, err))?;
        self.pos += got;
        if got < len {
            return Err(self.truncated(what));
        }
        Ok(())
    }

    /// A GGUF string. Invalid UTF-8 is replaced rather than rejected:
    /// llama.cpp does not check it, and the bytes are only shown to users.
    fn string(&mut self, what: &str) -> Result<String, ModelError> {
        let len = self.u64(what)?;
        if len > MAX_STRING_BYTES {
            return Err(self.malformed(format!(
                "a string of {len} bytes at byte {} in {what}, more than the {MAX_STRING_BYTES} accepted",
                self.pos - 8
            )));
        }
        let bytes = self.bytes(len, what)?;
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds GGUF bytes field by field.
    #[derive(Default)]
    struct Builder(Vec<u8>);

    impl Builder {
        fn header(version: u32, tensors: u64, kvs: u64) -> Builder {
            let mut b = Builder::default();
            b.0.extend_from_slice(b"GGUF");
            b.u32(version).u64(tensors).u64(kvs);
            b
        }

        fn u32(&mut self, v: u32) -> &mut Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }

        fn u64(&mut self, v: u64) -> &mut Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }

        fn string(&mut self, s: &str) -> &mut Self {
            self.u64(s.len() as u64);
            self.0.extend_from_slice(s.as_bytes());
            self
        }

        fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
            self.string(key).u32(gguf_type::U32).u32(v)
        }

        fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
            self.string(key).u32(gguf_type::STRING).string(v)
        }

        fn tensor(&mut self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> &mut Self {
            self.string(name).u32(dims.len() as u32);
            for &d in dims {
                self.u64(d);
            }
            self.u32(ggml_type).u64(offset)
        }
    }

    /// The header of a small llama-like GGUF v3: ten metadata entries, a
    /// 1000-string vocabulary, two tensors (F16 and Q4_K).
    fn sample_header() -> Vec<u8> {
        let mut b = Builder::header(3, 2, 10);
        b.kv_str("general.architecture", "llama")
            .kv_str("general.name", "tiny")
            .kv_u32("llama.block_count", 2)
            .kv_u32("llama.embedding_length", 256)
            .kv_u32("llama.attention.head_count", 8)
            .kv_u32("llama.attention.head_count_kv", 2);
        b.string("llama.context_length")
            .u32(gguf_type::U64)
            .u64(4096);
        b.string("llama.rope.freq_base").u32(gguf_type::F32);
        b.0.extend_from_slice(&10000.0f32.to_le_bytes());
        b.string("tokenizer.ggml.add_bos_token")
            .u32(gguf_type::BOOL);
        b.0.push(1);
        b.string("tokenizer.ggml.tokens")
            .u32(gguf_type::ARRAY)
            .u32(gguf_type::STRING)
            .u64(1000);
        for i in 0..1000 {
            b.string(&format!("tok{i}"));
        }
        b.tensor("token_embd.weight", &[256, 1000], 1, 0).tensor(
            "blk.0.attn_q.weight",
            &[256, 256],
            12,
            512_000,
        );
        b.0
    }

    /// [`sample_header`] followed by alignment padding and data bytes.
    fn sample_file() -> Vec<u8> {
        let mut bytes = sample_header();
        while bytes.len() % 32 != 0 {
            bytes.push(0);
        }
        bytes.extend_from_slice(&[0xAB; 64]);
        bytes
    }

    fn parse_bytes(bytes: &[u8]) -> Result<GgufFile, ModelError> {
        parse(bytes, "test.gguf")
    }

    fn malformed_detail(bytes: &[u8]) -> String {
        let err = parse_bytes(bytes).unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::Malformed, "{err}");
        err.detail
    }

    #[test]
    fn reads_metadata_and_tensors() {
        let file = parse_bytes(&sample_file()).unwrap();
        assert_eq!(file.version, 3);
        assert_eq!(file.architecture(), Some("llama"));
        assert_eq!(file.arch_u64("block_count"), Some(2));
        assert_eq!(file.arch_u64("embedding_length"), Some(256));
        assert_eq!(file.arch_u64("attention.head_count"), Some(8));
        assert_eq!(file.arch_u64("attention.head_count_kv"), Some(2));
        assert_eq!(file.arch_u64("context_length"), Some(4096));
        assert_eq!(file.arch_u64("feed_forward_length"), None);
        assert_eq!(file.arch_u64("rope.freq_base"), None);
        assert_eq!(
            file.metadata["llama.rope.freq_base"],
            GgufValue::Float(10000.0)
        );
        assert_eq!(
            file.metadata["tokenizer.ggml.add_bos_token"],
            GgufValue::Bool(true)
        );
        assert_eq!(
            file.tensors,
            vec![
                GgufTensor {
                    name: "token_embd.weight".into(),
                    dims: vec![256, 1000],
                    ggml_type: 1,
                },
                GgufTensor {
                    name: "blk.0.attn_q.weight".into(),
                    dims: vec![256, 256],
                    ggml_type: 12,
                },
            ]
        );
        assert_eq!(file.tensors[0].bytes(), Some(256 * 1000 * 2));
        // Q4_K: 256 blocks of 256 elements, 144 bytes each.
        assert_eq!(file.tensors[1].bytes(), Some(256 * 144));
    }

    #[test]
    fn arrays_keep_only_their_head() {
        let file = parse_bytes(&sample_file()).unwrap();
        let GgufValue::Array {
            elem_type,
            len,
            head,
        } = &file.metadata["tokenizer.ggml.tokens"]
        else {
            panic!("not an array");
        };
        assert_eq!(
            (*elem_type, *len, head.len()),
            (gguf_type::STRING, 1000, ARRAY_HEAD_LEN)
        );
        assert_eq!(head[15].as_str(), Some("tok15"));
    }

    #[test]
    fn numeric_arrays_are_skipped_past_their_head() {
        let mut b = Builder::header(2, 0, 2);
        b.string("a")
            .u32(gguf_type::ARRAY)
            .u32(gguf_type::I32)
            .u64(100);
        for i in 0..100i32 {
            b.0.extend_from_slice(&(-i).to_le_bytes());
        }
        b.kv_u32("after", 7);
        let file = parse_bytes(&b.0).unwrap();
        let GgufValue::Array { len, head, .. } = &file.metadata["a"] else {
            panic!("not an array");
        };
        assert_eq!(*len, 100);
        assert_eq!(head[3], GgufValue::Int(-3));
        assert_eq!(file.metadata["after"].as_u64(), Some(7));
        assert_eq!(file.metadata["a"].as_u64(), None);
    }

    #[test]
    fn integer_getters() {
        assert_eq!(GgufValue::Int(5).as_u64(), Some(5));
        assert_eq!(GgufValue::Int(-1).as_u64(), None);
        assert_eq!(GgufValue::Float(5.0).as_u64(), None);
        assert_eq!(GgufValue::Str("x".into()).as_str(), Some("x"));
        assert_eq!(GgufValue::Bool(true).as_str(), None);
    }

    #[test]
    fn tensor_bytes_follow_ggml_blocks() {
        let tensor = |dims: Vec<u64>, ggml_type| GgufTensor {
            name: "t".into(),
            dims,
            ggml_type,
        };
        assert_eq!(tensor(vec![64, 3], 8).bytes(), Some(2 * 3 * 34)); // Q8_0
        assert_eq!(tensor(vec![4096, 4096], 14).bytes(), Some(16 * 4096 * 210)); // Q6_K
        assert_eq!(tensor(vec![2880, 32], 39).bytes(), Some(90 * 32 * 17)); // MXFP4
        assert_eq!(tensor(vec![], 0).bytes(), Some(4)); // F32 scalar
        assert_eq!(tensor(vec![100, 2], 12).bytes(), None); // row not whole blocks
        assert_eq!(tensor(vec![256], 4).bytes(), None); // removed Q4_2
        assert_eq!(tensor(vec![256], 99).bytes(), None); // unknown
        assert_eq!(tensor(vec![u64::MAX, 2], 0).elements(), None);
        assert_eq!(tensor(vec![u64::MAX], 0).bytes(), None); // byte count overflows
        assert_eq!(tensor(vec![0, 7], 12).bytes(), Some(0));
    }

    #[test]
    fn type_names_match_ggml() {
        assert_eq!(ggml_type_name(0), Some("f32"));
        assert_eq!(ggml_type_name(12), Some("q4_K"));
        assert_eq!(ggml_type_name(30), Some("bf16"));
        assert_eq!(ggml_type_name(35), Some("tq2_0"));
        assert_eq!(ggml_type_name(5), None);
        assert_eq!(ggml_type_name(32), None);
        // Every named type has a block layout and the other way round.
        for id in 0..64 {
            assert_eq!(
                ggml_type_name(id).is_some(),
                ggml_block_layout(id).is_some(),
                "type {id}"
            );
        }
    }

    #[test]
    fn rejects_bad_magic() {
        let mut bytes = sample_file();
        bytes[..4].copy_from_slice(b"GGML");
        assert!(malformed_detail(&bytes).contains("\"GGML\""));
    }

    #[test]
    fn rejects_versions_other_than_2_and_3() {
        for (version, hint) in [
            (1, "v1"),
            (4, "versions 2 and 3"),
            (0x0300_0000, "big-endian"),
        ] {
            let err = parse_bytes(&Builder::header(version, 0, 0).0).unwrap_err();
            assert_eq!(err.kind, ModelErrorKind::Unsupported);
            assert!(err.detail.contains(hint), "{err}");
        }
        assert!(parse_bytes(&Builder::header(2, 0, 0).0).is_ok());
    }

    #[test]
    fn rejects_absurd_counts() {
        let detail = malformed_detail(&Builder::header(3, 1_000_001, 0).0);
        assert!(detail.contains("1000001 tensors"), "{detail}");
        let detail = malformed_detail(&Builder::header(3, 0, u64::MAX).0);
        assert!(
            detail.contains("18446744073709551615 metadata entries"),
            "{detail}"
        );
    }

    #[test]
    fn rejects_a_huge_string_quickly() {
        let mut b = Builder::header(3, 0, 1);
        b.u64(1 << 40);
        b.0.extend_from_slice(b"key");
        let started = std::time::Instant::now();
        let detail = malformed_detail(&b.0);
        assert!(
            detail.contains("1099511627776 bytes at byte 24"),
            "{detail}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn rejects_too_many_dimensions() {
        let mut b = Builder::header(3, 1, 0);
        b.tensor("t", &[1; 9], 0, 0);
        assert!(malformed_detail(&b.0).contains("9 dimensions"));
    }

    #[test]
    fn rejects_unknown_value_types_and_nested_arrays() {
        let mut b = Builder::header(3, 0, 1);
        b.string("k").u32(13).u32(0);
        assert!(malformed_detail(&b.0).contains("unknown value type 13"));

        let mut b = Builder::header(3, 0, 1);
        b.string("k").u32(gguf_type::ARRAY).u32(77).u64(0);
        assert!(malformed_detail(&b.0).contains("unknown array element type 77"));

        let mut b = Builder::header(3, 0, 1);
        b.string("k")
            .u32(gguf_type::ARRAY)
            .u32(gguf_type::ARRAY)
            .u64(1);
        let err = parse_bytes(&b.0).unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::Unsupported);
    }

    #[test]
    fn rejects_duplicate_keys() {
        let mut b = Builder::header(3, 0, 2);
        b.kv_u32("k", 1).kv_u32("k", 2);
        assert!(malformed_detail(&b.0).contains("\"k\" appears twice"));
    }

    #[test]
    fn rejects_an_array_too_long_for_any_file() {
        let mut b = Builder::header(3, 0, 1);
        b.string("k")
            .u32(gguf_type::ARRAY)
            .u32(gguf_type::U64)
            .u64(u64::MAX);
        let detail = malformed_detail(&b.0);
        assert!(
            detail.contains("truncated") || detail.contains("more than any file"),
            "{detail}"
        );
        // A long array of strings whose data is missing ends at the file's end.
        let mut b = Builder::header(3, 0, 1);
        b.string("k")
            .u32(gguf_type::ARRAY)
            .u32(gguf_type::STRING)
            .u64(u64::MAX);
        assert!(malformed_detail(&b.0).contains("truncated at byte 49"));
    }

    #[test]
    fn truncation_names_the_byte_and_the_field() {
        let bytes = sample_file();
        // Inside the version.
        assert_eq!(
            malformed_detail(&bytes[..6]),
            "truncated at byte 6 while reading the version"
        );
        // Inside the first key's length.
        assert_eq!(
            malformed_detail(&bytes[..26]),
            "truncated at byte 26 while reading the key of metadata entry 0"
        );
        // Inside the vocabulary, past the stored head.
        let detail = malformed_detail(&bytes[..bytes.len() / 2]);
        assert!(
            detail.contains("the value of \"tokenizer.ggml.tokens\""),
            "{detail}"
        );
        assert!(
            detail.starts_with(&format!("truncated at byte {}", bytes.len() / 2)),
            "{detail}"
        );
    }

    /// Fails every read: placed after the header, it proves the parser
    /// never reads into the tensor data.
    struct NoReadsHere;

    impl Read for NoReadsHere {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("read past the header"))
        }
    }

    #[test]
    fn stops_at_the_end_of_the_tensor_list() {
        let header = sample_header();
        let from_header = parse(header.as_slice().chain(NoReadsHere), "t").unwrap();
        assert_eq!(from_header, parse_bytes(&sample_file()).unwrap());
        assert!(parse_bytes(&header[..header.len() - 1]).is_err());
    }

    #[test]
    fn read_file_reads_from_disk() {
        let path = std::env::temp_dir().join(format!("oomguard-gguf-{}.gguf", std::process::id()));
        std::fs::write(&path, sample_file()).unwrap();
        let result = read_file(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(result.unwrap().tensors.len(), 2);
        let err = read_file(&path).unwrap_err();
        assert_eq!(err.kind, ModelErrorKind::NotFound);
    }

    fn arbitrary_tensors() -> impl Strategy<Value = Vec<GgufTensor>> {
        let ggml_type = prop_oneof![Just(0u32), Just(1), Just(8), Just(12), Just(30), Just(99)];
        proptest::collection::vec(
            (proptest::collection::vec(any::<u64>(), 0..5), ggml_type),
            0..8,
        )
        .prop_map(|tensors| {
            tensors
                .into_iter()
                .enumerate()
                .map(|(i, (dims, ggml_type))| GgufTensor {
                    name: format!("blk.{i}.ffn_up.weight"),
                    dims,
                    ggml_type,
                })
                .collect()
        })
    }

    fn build(tensors: &[GgufTensor]) -> Vec<u8> {
        let mut b = Builder::header(3, tensors.len() as u64, 2);
        b.kv_str("general.architecture", "llama");
        b.string("tokenizer.ggml.tokens")
            .u32(gguf_type::ARRAY)
            .u32(gguf_type::STRING)
            .u64(20);
        for i in 0..20 {
            b.string(&format!("t{i}"));
        }
        for (i, t) in tensors.iter().enumerate() {
            b.tensor(&t.name, &t.dims, t.ggml_type, i as u64 * 32);
        }
        b.0
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_bytes(&bytes);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_start_never_panic(
            kvs in 0u64..4,
            tensors in 0u64..4,
            body in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut bytes = Builder::header(3, tensors, kvs).0;
            bytes.extend_from_slice(&body);
            let _ = parse_bytes(&bytes);
        }

        #[test]
        fn valid_files_round_trip_their_tensors(tensors in arbitrary_tensors()) {
            let file = parse_bytes(&build(&tensors)).unwrap();
            prop_assert_eq!(file.tensors, tensors);
        }

        #[test]
        fn any_truncation_is_an_error(tensors in arbitrary_tensors(), cut in any::<prop::sample::Index>()) {
            let bytes = build(&tensors);
            let cut = cut.index(bytes.len());
            let err = parse_bytes(&bytes[..cut]).unwrap_err();
            prop_assert_eq!(err.kind, ModelErrorKind::Malformed);
            let expected = format!("truncated at byte {cut} while reading ");
            prop_assert!(err.detail.starts_with(&expected), "{}", err.detail);
        }
    }
}
