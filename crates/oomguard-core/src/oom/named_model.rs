//! The model a text names by its size: "Llama-2-70b", "DeepSeek-R1:70B",
//! "gemma-2-27b-it", "Mixtral 8x7b", "34b models". Its parameter count at
//! the precision the text states (4-bit, 8-bit, fp32, else 16 bits) gives
//! the weights' bytes, and the GPUs the text says they are spread over (a
//! count of cards, a tensor-parallel size) give each card's share: the first
//! figure an expert sets against the card's memory.

use std::sync::LazyLock;

use regex::Regex;

/// Largest parameter count read, in billions: a figure above it is not a
/// model's size (no published model has 2 trillion parameters).
const MAX_BILLIONS: f64 = 2000.0;

/// Smallest parameter count read, in billions.
const MIN_BILLIONS: f64 = 0.1;

/// Share of the product an "experts x size" name has as parameters: the
/// experts share attention and embeddings, so Mixtral 8x7B has 46.7B
/// parameters (Mistral AI's model card: "46.7B total parameters") and
/// 8x22B has 141B, 0.83 and 0.80 of the product.
const MOE_SHARE: f64 = 0.8;

/// Most GPUs a text's count is read as (a larger figure is not a count of
/// the cards one model is spread over).
const MAX_GPUS: u64 = 64;

/// The model a text names, the precision its weights are held at, and the
/// GPUs they are spread over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedModel {
    /// Parameters, from the size in its name.
    pub params: u64,
    /// Bits per parameter of the weights: 4.5 for 4-bit schemes (NF4 with an
    /// fp32 scale per 64 weights), 8, 16 or 32, times 10.
    pub tenth_bits: u32,
    /// GPUs the text says the weights are spread over (1 when it says none).
    pub gpus: u64,
    /// The words that name the model, as written.
    pub name: String,
}

impl NamedModel {
    /// Bytes of the weights on each GPU.
    pub fn weight_bytes_per_gpu(&self) -> u64 {
        let bytes = self.params as f64 * self.tenth_bits as f64 / 80.0;
        (bytes / self.gpus.max(1) as f64) as u64
    }

    /// The precision as the evidence words it.
    pub fn precision(&self) -> &'static str {
        match self.tenth_bits {
            45 => "4-bit",
            80 => "8-bit",
            320 => "fp32",
            _ => "16-bit",
        }
    }
}

/// A size in billions, optionally after an expert count: `70b`, `1.5B`,
/// `8x7b`. What surrounds it is checked in [`sized_name`].
static SIZE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:(\d{1,2})\s?[xX×]\s?)?(\d{1,4}(?:\.\d{1,2})?)[bB]\b").expect("size pattern")
});

/// Words after a size that make it a model's.
static MODEL_WORD_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[\s-]?(?i:models?\b|parameters?\b|params\b|llms?\b|checkpoints?\b)")
        .expect("model word pattern")
});

/// Words that state the weights' precision, strongest first.
static FOUR_BIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:\b4[- ]?bits?\b|qlora|\bnf4\b|\bint4\b|\bawq\b|\bgptq\b|load_in_4bit|\bQ4_|\bq4\b|\bexl2\b)")
        .expect("4-bit pattern")
});
static EIGHT_BIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:\b8[- ]?bits?\b|\bint8\b|\bfp8\b|load_in_8bit|\bQ8_|\bq8\b)")
        .expect("8-bit pattern")
});
static FP32: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i:\bfp32\b|\bfloat32\b|torch_dtype\s*=\s*torch\.float\b)").expect("fp32 pattern")
});

/// A count of GPUs the weights are spread over: `2x24GB`, `8x A100`,
/// `4 GPUs`, `--tensor-parallel-size 4`, `tp=8`.
static GPU_COUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i:\b(\d{1,2})\s?[x×]\s?(?:\d{1,3}\s?GB\b|(?-i:[A-Z]))|",
        r"\b(\d{1,2})\s?(?:GPUs|gpus|cards)\b|",
        r"tensor[-_ ]parallel[-_ ]size\W{1,3}(\d{1,2})\b|(?:--tp|\btp_size|\btp)[= ](\d{1,2})\b)",
    ))
    .expect("gpu count pattern")
});

/// Reads the first model named by its size in `lines`.
pub(crate) fn read<'a>(lines: impl Iterator<Item = &'a str> + Clone) -> Option<NamedModel> {
    let (billions, name) = lines.clone().find_map(sized_name)?;
    let text_has = |re: &Regex| lines.clone().any(|l| re.is_match(l));
    let tenth_bits = if text_has(&FOUR_BIT) {
        45
    } else if text_has(&EIGHT_BIT) {
        80
    } else if text_has(&FP32) {
        320
    } else {
        160
    };
    let gpus = lines
        .clone()
        .flat_map(|l| GPU_COUNT.captures_iter(l).collect::<Vec<_>>())
        .filter_map(|c| (1..=4).find_map(|i| c.get(i)))
        .filter_map(|m| m.as_str().parse::<u64>().ok())
        .filter(|n| (1..=MAX_GPUS).contains(n))
        .max()
        .unwrap_or(1);
    Some(NamedModel {
        params: (billions * 1e9) as u64,
        tenth_bits,
        gpus,
        name,
    })
}

/// The first size in `line` that names a model, in billions, with the words
/// that name it. A size counts when it is part of a joined name (`-70b`,
/// `:70B`, `_7b`, `/8B` after a letter or digit), follows a capitalized word
/// (`Mixtral 8x7b`, `LLaMA 65B`), or comes before a word such as "model" or
/// "parameters" (`34b models`). A rate (`70B/s`) is not a size.
fn sized_name(line: &str) -> Option<(f64, String)> {
    // A size is a digit right before its `b`: most lines (an OOM message's
    // `MiB` and `GiB` among them) have none, and skip the pattern.
    let digit_then_b = line
        .as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_digit() && matches!(w[1], b'b' | b'B'));
    if !digit_then_b {
        return None;
    }
    for c in SIZE.captures_iter(line) {
        let whole = c.get(0)?;
        let (start, end) = (whole.start(), whole.end());
        let head = &line[..start];
        let tail = &line[end..];
        if tail.starts_with("/s") {
            continue;
        }
        let prev = head.chars().next_back();
        let joined = matches!(prev, Some('-' | '_' | ':' | '/'))
            && head[..head.len() - 1]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        let after_name = prev == Some(' ') && follows_name(head);
        let before_word = MODEL_WORD_AFTER.is_match(tail);
        let starts_cleanly = prev.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '.');
        if !starts_cleanly || !(joined || after_name || before_word) {
            continue;
        }
        let size: f64 = c.get(2)?.as_str().parse().ok()?;
        let billions = match c.get(1).and_then(|n| n.as_str().parse::<f64>().ok()) {
            Some(experts) => experts * size * MOE_SHARE,
            None => size,
        };
        if (MIN_BILLIONS..=MAX_BILLIONS).contains(&billions) {
            return Some((billions, name_around(line, start, end)));
        }
    }
    None
}

/// Splits a line's text before a size into words, as a name is written.
fn words_before(head: &str) -> impl Iterator<Item = &str> {
    head.trim_end()
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"' || c == '\'')
}

/// The words before a size name a model: a capitalized name (`LLaMA 65B`),
/// a name with its version joined (`GPT-3 6.7B`, `llama-2 70B`) or a
/// capitalized name then its version (`Llama 2 70B`, `Llama 3.1 8B`): model
/// families write their generation between the name and the size.
fn follows_name(head: &str) -> bool {
    let capitalized = |w: &str| w.starts_with(|c: char| c.is_ascii_uppercase()) && w.len() > 1;
    let version = |w: &str| {
        let mut parts = w.splitn(2, '.');
        let digits = |p: Option<&str>| {
            p.is_some_and(|p| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
        };
        let first = parts.next();
        digits(first) && parts.next().is_none_or(|p| digits(Some(p)))
    };
    let mut words = words_before(head);
    let Some(last) = words.next() else {
        return false;
    };
    if capitalized(last) {
        return true;
    }
    if let Some((name, v)) = last.rsplit_once('-') {
        if name.len() > 1 && name.bytes().all(|b| b.is_ascii_alphabetic()) && version(v) {
            return true;
        }
    }
    version(last) && words.next().is_some_and(capitalized)
}

/// The word that holds the size, as written: `DeepSeek-R1:70B`,
/// `Mixtral 8x7b`.
fn name_around(line: &str, start: usize, end: usize) -> String {
    let is_name = |c: char| c.is_alphanumeric() || "-_:./".contains(c);
    let from = line[..start]
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_name(*c))
        .last()
        .map_or(start, |(i, _)| i);
    let to = line[end..]
        .char_indices()
        .find(|(_, c)| !is_name(*c))
        .map_or(line.len(), |(i, _)| end + i);
    let word = line[from..to].trim_matches(|c: char| ".:/".contains(c));
    if word.len() == line[start..end].len() {
        // A size on its own after a name: take the name too ("Mixtral 8x7b",
        // "Llama 3.1 8B").
        let mut before = line[..start].trim_end().rsplit(char::is_whitespace);
        if let Some(prev) = before.next().filter(|w| follows_name(w)) {
            return format!("{prev} {word}");
        }
        let version = line[..start].trim_end().rsplit(char::is_whitespace).next();
        if let (Some(v), Some(name)) = (version, before.next()) {
            if follows_name(&format!("{name} {v}")) {
                return format!("{name} {v} {word}");
            }
        }
    }
    word.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(text: &str) -> Option<NamedModel> {
        read(text.lines())
    }

    #[test]
    fn sizes_in_model_names_are_read() {
        for (text, billions, name) in [
            (
                "Run DeepSeek-R1:70B with vllm serve",
                70.0,
                "DeepSeek-R1:70B",
            ),
            (
                "keras_nlp.models.GemmaCausalLM.from_preset(\"hf://google/gemma-2-27b-it\")",
                27.0,
                "hf://google/gemma-2-27b-it",
            ),
            (
                "fine-tuning meta-llama/Llama-2-7b-hf on one card",
                7.0,
                "meta-llama/Llama-2-7b-hf",
            ),
            (
                "QLoRa Fine Tuning Mixtral 8x7b or 34b models OOM",
                44.8,
                "Mixtral 8x7b",
            ),
            ("loading LLaMA 65B in fp16", 65.0, "LLaMA 65B"),
            ("Qwen2.5-1.5B-Instruct", 1.5, "Qwen2.5-1.5B-Instruct"),
            ("two 34b models", 34.0, "34b"),
            (
                "Solution to loading Llama 2 70B on 8 GPUs?",
                70.0,
                "Llama 2 70B",
            ),
            ("Model: Llama 3.1 8B", 8.0, "Llama 3.1 8B"),
            ("fine-tuning GPT-3 6.7B on one RTX 3090", 6.7, "GPT-3 6.7B"),
            ("we can't run llama-2 70B on 4*A10G", 70.0, "llama-2 70B"),
        ] {
            let m = named(text).unwrap_or_else(|| panic!("{text}"));
            assert!(
                (m.params as f64 / 1e9 - billions).abs() < 1e-6,
                "{text}: {}",
                m.params
            );
            assert_eq!(m.name, name, "{text}");
        }
    }

    #[test]
    fn sizes_that_are_not_a_model_s_are_not_read() {
        for text in [
            "aligned to 64B boundaries",
            "wrote 512B to disk",
            "throughput 70B/s",
            "0x7B is the opcode",
            "version 1.2b",
            "step 7b of 10",
            "step 2 7b of 10",
            "v-2 3b",
            "it took 3000b",
        ] {
            assert_eq!(named(text), None, "{text}");
        }
    }

    #[test]
    fn the_precision_and_the_gpu_count_come_from_anywhere_in_the_text() {
        let m = named("QLoRA of Llama-2-70b on 2x24GB cards").unwrap();
        assert_eq!((m.tenth_bits, m.gpus), (45, 2));
        assert_eq!(m.weight_bytes_per_gpu(), (70e9 * 4.5 / 8.0 / 2.0) as u64);
        let m = named("vllm serve Qwen/Qwen2.5-72B --tensor-parallel-size 4").unwrap();
        assert_eq!((m.tenth_bits, m.gpus), (160, 4));
        assert_eq!(m.weight_bytes_per_gpu(), (72e9 * 2.0 / 4.0) as u64);
        let m = named("Llama-3-8B loaded with load_in_8bit=True").unwrap();
        assert_eq!((m.tenth_bits, m.precision()), (80, "8-bit"));
        let m = named("Llama-3-8B with torch_dtype=torch.float32 on 8x A100").unwrap();
        assert_eq!((m.tenth_bits, m.gpus), (320, 8));
    }
}
