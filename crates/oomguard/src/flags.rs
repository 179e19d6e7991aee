//! Command-line flags, parsed into one settings value per command before any
//! work starts. The library never sees a flag.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "oomguard",
    version,
    about = "Prevent, explain and recover from GPU out-of-memory failures",
    long_about = "Prevent, explain and recover from GPU out-of-memory failures.\n\nExit codes: 0 success; 1 the answer is no (no OOM event found); 2 usage, input or environment error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find every OOM event in logs or tracebacks and explain cause and fix.
    #[command(
        long_about = "Find every out-of-memory event in logs, tracebacks or pasted text (plain or .gz, any size, \
ANSI colours, CRLF, wrapped lines) and explain each: the memory accounting, the phase, the ranked causes \
and the fixes with values and code.\n\nReads standard input when no PATH is given or PATH is '-'. \
Exit code 0 when an event was found, 1 when none was, 2 on an input error."
    )]
    Explain(ExplainArgs),
    /// Predict peak GPU memory for a model and workload; say what fits.
    #[command(
        long_about = "Predict the peak GPU memory of a model and workload, per GPU: weights, gradients, optimizer \
states, activations, KV cache, temporaries and the CUDA context; with --gpu, whether it fits, the largest batch \
and sequence that fit, and the cheapest changes that make it fit.\n\nMODEL is a path (a model folder with \
config.json, a config.json, a .safetensors file beside its config.json, a .gguf file), a repo id in the local \
Hugging Face cache, or a name from `oomguard models`. Nothing is downloaded.\n\nExit code 0 when it fits (or \
no --gpu was given), 1 when it does not fit, 2 on an input error."
    )]
    Plan(Box<PlanArgs>),
    /// Run a command; on OOM restart it with a batch that fits, and say why.
    #[command(
        long_about = "Run COMMAND with {batch} (and {accum}) in its arguments replaced by the current batch size \
(also exported as OOMGUARD_BATCH, and OOMGUARD_ACCUM). Its output passes through unchanged and live. When it \
dies of an out-of-memory error, oomguard prints the diagnosis, picks the next batch from the error's figures \
and restarts it, up to --max-restarts times.\n\nExit code: the last attempt's (128+N for a signal; 127 when \
the command does not exist).",
        trailing_var_arg = true
    )]
    Run(RunArgs),
    /// Find the largest batch a command survives, in few trial runs.
    #[command(
        long_about = "Run short trials of COMMAND ({batch} replaced, OOMGUARD_BATCH exported) to find the largest \
batch size with which it exits 0. It learns from each OOM's figures and, when GPU memory can be read \
(nvidia-smi), fits memory against batch and jumps to the predicted limit, then verifies it and the batch just \
above. A trial stopped by --trial-timeout without an OOM counts as survived.\n\nExit code 0 when a batch was \
found, 1 when even --min fails, the failing trial's code when one fails without an OOM, 2 on bad input.",
        trailing_var_arg = true
    )]
    Tune(TuneArgs),
    /// Live GPU memory per GPU and process, time to full, alerts, Prometheus metrics.
    #[command(
        long_about = "Live GPU memory: per GPU (used/total, bar, time until full when rising) and per process (pid, \
user, command, bytes). A refreshing view on a terminal; a table per sample otherwise; --json gives one JSON \
object a sample. Sources: NVML (loaded at run time), nvidia-smi's CSV queries, or a recording (--replay).\n\n\
Exit code 0; 2 on bad input or when no source can be read (no NVIDIA driver: use --replay)."
    )]
    Watch(WatchArgs),
    /// Explain a PyTorch memory snapshot: the OOM (or peak), sites, leaks, fragmentation.
    #[command(
        long_about = "Read a PyTorch memory snapshot (torch.cuda.memory._dump_snapshot(), plain or gzipped) without \
running anything in it, and explain each device at its OOM (or at the peak when there was none): allocated, \
reserved, cached but free, the largest free block against the request, the allocation sites by live bytes \
(folded to your own code), the sites that grew across iterations, the pools, and the causes and fixes.\n\n\
Exit code 0 when the snapshot was read, 2 when it could not be (or asks to import or call anything)."
    )]
    Snapshot(SnapshotArgs),
    /// List the built-in model catalog.
    Models(ListArgs),
    /// Internal: ends a command's process group when oomguard dies.
    #[command(name = "__guard", hide = true)]
    Guard {
        /// Grace period between SIGTERM and SIGKILL, in milliseconds.
        kill_after_ms: u64,
    },
    /// List the built-in GPU catalog.
    Gpus(ListArgs),
}

/// A flag given twice takes its last value, so a recommended change can be
/// appended to the command as it stands (`... --batch 8 --batch 5`).
#[derive(Debug, Clone, Args)]
#[command(args_override_self = true)]
pub struct PlanArgs {
    /// Model folder, config.json, .safetensors, .gguf, cached repo id, or catalog name.
    #[arg(value_name = "MODEL")]
    pub model: String,
    /// Training (default: inference).
    #[arg(long)]
    pub train: bool,
    /// Sequences per step (default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// Tokens per sequence, prompt plus generated (default 512, capped at the model's maximum).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub seq: Option<u64>,
    /// Weights' dtype (default: the checkpoint's, else fp32).
    #[arg(long, value_name = "DTYPE", value_parser = ["fp32", "fp16", "bf16"])]
    pub dtype: Option<String>,
    /// Mixed-precision training: fp32 master weights, half-precision activations.
    #[arg(long)]
    pub amp: bool,
    /// Weight quantization: int8, int4, nf4, fp8; with --engine llama.cpp a GGUF type (q4_k_m, q8_0, f16, ...).
    #[arg(long, value_name = "Q")]
    pub quant: Option<String>,
    /// Optimizer (default adamw, the fused kernel; adamw-foreach adds torch's foreach step temporary).
    #[arg(long, value_name = "NAME", value_parser = ["adamw", "adamw-foreach", "adamw-8bit", "adafactor", "sgd", "sgd-momentum", "lion"])]
    pub optimizer: Option<String>,
    /// Gradient (activation) checkpointing (= --activation-checkpointing full, which it overrides).
    #[arg(long)]
    pub grad_checkpointing: bool,
    /// Activations kept for backward: none, full (every block recomputed), selective (torchtitan's per-op policy).
    #[arg(long, value_name = "MODE", value_parser = ["none", "full", "selective"], help_heading = "Training setup")]
    pub activation_checkpointing: Option<String>,
    /// Loss: full (one fp32 cross-entropy over all logits), chunked (torchtune's CEWithChunkedOutputLoss) or sum (logits.sum(), no cross-entropy, as benchmarks do).
    #[arg(long, value_name = "KIND", value_parser = ["full", "chunked", "sum"], help_heading = "Training setup")]
    pub loss: Option<String>,
    /// Chunks of the chunked loss (default 8, torchtune's num_output_chunks).
    #[arg(
        long,
        value_name = "N",
        requires = "loss",
        help_heading = "Training setup"
    )]
    pub loss_chunks: Option<u64>,
    /// Optimizer step fused into backward, one parameter at a time (torchtune's optimizer_in_bwd).
    #[arg(
        long,
        visible_alias = "optimizer-in-bwd",
        help_heading = "Training setup"
    )]
    pub optimizer_in_backward: bool,
    /// Micro-batches per optimizer step (gradient_accumulation_steps); gradients stay across them.
    #[arg(
        long,
        value_name = "N",
        visible_alias = "gradient-accumulation-steps",
        help_heading = "Training setup"
    )]
    pub grad_accum: Option<u64>,
    /// Optimizer states in CUDA managed memory (bitsandbytes' Paged* optimizers).
    #[arg(long, help_heading = "Training setup")]
    pub paged_optimizer: bool,
    /// GPUs each sequence is split over (context parallelism, torchtitan's context_parallel_degree).
    #[arg(
        long,
        value_name = "N",
        visible_alias = "cp",
        help_heading = "Training setup"
    )]
    pub context_parallel: Option<u64>,
    /// With --tp: norms and dropouts split along the sequence too (Megatron's --sequence-parallel; torchtitan's TP).
    #[arg(long, help_heading = "Training setup")]
    pub sequence_parallel: bool,
    /// Framework running the training: hf (Trainer, PEFT, Accelerate; default), litgpt, torchtune.
    #[arg(long, value_name = "NAME", value_parser = ["hf", "litgpt", "torchtune"], help_heading = "Training setup")]
    pub framework: Option<String>,
    /// torch.compile on the loss (torchtune's compile: True; torchtitan's --training.compile since 2025-02): cross-entropy keeps the half-precision logits only.
    #[arg(long, help_heading = "Training setup")]
    pub compile: bool,
    /// Checkpointed block inputs moved to CPU memory in forward (torchtune's enable_activation_offloading); with --grad-checkpointing.
    #[arg(
        long,
        visible_alias = "enable-activation-offloading",
        help_heading = "Training setup"
    )]
    pub activation_offloading: bool,
    /// The training loop keeps the logits referenced through backward (a loop that holds the model's outputs while it calls loss.backward(); torchtune's recipes before 2024-07-28), so they coexist with the blocks' backward.
    #[arg(long, help_heading = "Training setup")]
    pub logits_kept: bool,
    /// Train LoRA adapters of this rank.
    #[arg(long, value_name = "RANK", value_parser = clap::value_parser!(u64).range(1..))]
    pub lora: Option<u64>,
    /// The bitsandbytes release running --quant nf4 (`pip show bitsandbytes`); before 0.43.2 its 4-bit linears keep their inputs for backward.
    #[arg(long, value_name = "X.Y.Z", requires = "quant", value_parser = parse_bitsandbytes_version)]
    pub bitsandbytes_version: Option<oomguard_core::estimate::Release>,
    /// Layers LoRA adapts (default qv).
    #[arg(long, value_name = "T", value_parser = ["qv", "qkvo", "all-linear"], requires = "lora")]
    pub lora_targets: Option<String>,
    /// Attention kernel (default sdpa).
    #[arg(long, value_name = "IMPL", value_parser = ["eager", "sdpa", "flash"])]
    pub attention: Option<String>,
    /// Encoders: the head on top: mlm (AutoModelForMaskedLM, vocabulary logits for every token), classification (default) or none (AutoModel).
    #[arg(long, value_name = "HEAD", value_parser = ["mlm", "classification", "none"])]
    pub head: Option<String>,
    /// GPUs the work is spread over.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub gpus: Option<u64>,
    /// ZeRO stage over the data-parallel GPUs.
    #[arg(long, value_name = "STAGE", value_parser = clap::value_parser!(u8).range(0..=3))]
    pub zero: Option<u8>,
    /// Fully sharded data parallel (= --zero 3).
    #[arg(long, conflicts_with = "zero")]
    pub fsdp: bool,
    /// Tensor-parallel degree.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub tp: Option<u64>,
    /// The GPU: a catalog name (a100-80gb, rtx-4090, v100-16gb) or a size (24GB = the vendor's 24 GB, 24GiB, 80g).
    #[arg(long, value_name = "NAME|SIZE")]
    pub gpu: Option<String>,
    /// Machine-readable output on stdout.
    #[arg(long)]
    pub json: bool,
    /// Serving engine: hf (default; llama.cpp for a .gguf), vllm, llama.cpp, sglang.
    #[arg(long, value_name = "ENGINE", value_parser = ["hf", "vllm", "llama.cpp", "sglang"])]
    pub engine: Option<String>,
    /// vLLM: share of the GPU vLLM may take (default 0.9).
    #[arg(long, value_name = "F", help_heading = "vLLM")]
    pub gpu_memory_utilization: Option<f64>,
    /// vLLM: longest request (default: the model's maximum).
    #[arg(long, value_name = "N", help_heading = "vLLM", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_model_len: Option<u64>,
    /// vLLM: sequences per step.
    #[arg(long, value_name = "N", help_heading = "vLLM", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_num_seqs: Option<u64>,
    /// vLLM: tokens per step.
    #[arg(long, value_name = "N", help_heading = "vLLM", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_num_batched_tokens: Option<u64>,
    /// vLLM: KV cache dtype.
    #[arg(long, value_name = "DTYPE", help_heading = "vLLM", value_parser = ["auto", "fp8"])]
    pub kv_cache_dtype: Option<String>,
    /// vLLM: no CUDA graphs.
    #[arg(long, help_heading = "vLLM")]
    pub enforce_eager: bool,
    /// llama.cpp: layers offloaded to the GPU (-ngl).
    #[arg(long, value_name = "N", help_heading = "llama.cpp")]
    pub n_gpu_layers: Option<u64>,
    /// llama.cpp: context size (default: --seq).
    #[arg(long, value_name = "N", help_heading = "llama.cpp", value_parser = clap::value_parser!(u64).range(1..))]
    pub ctx_size: Option<u64>,
    /// llama.cpp: K cache type (f16, q8_0, q4_0, ...).
    #[arg(long, value_name = "TYPE", help_heading = "llama.cpp")]
    pub cache_type_k: Option<String>,
    /// llama.cpp: V cache type (quantized types need --flash-attn).
    #[arg(long, value_name = "TYPE", help_heading = "llama.cpp")]
    pub cache_type_v: Option<String>,
    /// llama.cpp: physical batch (default 512).
    #[arg(long, value_name = "N", help_heading = "llama.cpp", value_parser = clap::value_parser!(u64).range(1..))]
    pub ubatch_size: Option<u64>,
    /// llama.cpp: flash attention.
    #[arg(long, help_heading = "llama.cpp")]
    pub flash_attn: bool,
    /// SGLang: static share of the GPU (weights and KV pool).
    #[arg(long, value_name = "F", help_heading = "SGLang")]
    pub mem_fraction_static: Option<f64>,
    /// SGLang: longest request.
    #[arg(long, value_name = "N", help_heading = "SGLang", value_parser = clap::value_parser!(u64).range(1..))]
    pub context_length: Option<u64>,
    /// Hugging Face device_map="auto" with this max_memory (e.g. 0=20GiB,cpu=64GiB).
    #[arg(long, value_name = "DEVICE=SIZE,...")]
    pub max_memory: Option<String>,
    /// Inference: of --seq, the tokens generate() produces after the prompt (default 0: the whole sequence is the prompt, one prefill over it).
    #[arg(long, value_name = "N")]
    pub new_tokens: Option<u64>,
    /// The transformers release running generate() (`pip show transformers`); before 4.42 each step's outputs stay referenced through the next step's forward.
    #[arg(long, value_name = "X.Y.Z", requires = "new_tokens", value_parser = parse_transformers_version)]
    pub transformers_version: Option<oomguard_core::estimate::Release>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// First batch size (required when the command uses {batch}).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// Never go below this batch size.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_batch: u64,
    /// Restarts after the first attempt, at most.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub max_restarts: u32,
    /// Keep batch x accumulation equal to N: the batch is a divisor of N, {accum} becomes N / batch.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub global_batch: Option<u64>,
    /// After the minimum batch fails, one more run with CUDA_VISIBLE_DEVICES="".
    #[arg(long)]
    pub cpu_fallback: bool,
    /// Append one JSON line per attempt to this file.
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// A JSON summary on stdout at the end; the command's output goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// SIGKILL the command this long after a SIGTERM it ignores (1s, 500ms, 2m).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub kill_after: std::time::Duration,
    /// Share each restart's decision through this directory, keyed by the job's id.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// The job's id in --state (default: TORCHELASTIC_RUN_ID, SLURM_JOB_ID, else the Kubernetes Job name).
    #[arg(long, value_name = "ID", requires = "state")]
    pub run_id: Option<String>,
    /// After an OOM, record the decision and exit N so the launcher restarts the job.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub exit_code_on_oom: Option<u8>,
    /// After a leak (memory climbing step after step), restart once anyway.
    #[arg(long)]
    pub retry_leak: bool,
    /// Write the job's OOM, restart and batch counters as Prometheus text to FILE (atomically, for node_exporter's textfile collector).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Serve the job's counters as Prometheus text at http://ADDR/metrics while it runs.
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<String>,
    /// The command and its arguments (after `--`).
    #[arg(value_name = "COMMAND", num_args = 0.., allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TuneArgs {
    /// First batch size tried.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub start: u64,
    /// Smallest batch size considered.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub min: u64,
    /// Largest batch size considered.
    #[arg(long, value_name = "N", default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..))]
    pub max: u64,
    /// Report the found size times 1 - F.
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub margin: f64,
    /// Stop a trial after this long (seconds, or 30s, 5m); surviving that long counts as success.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub trial_timeout: Option<std::time::Duration>,
    /// SIGKILL a trial this long after a SIGTERM it ignores.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub kill_after: std::time::Duration,
    /// Where trials' peak memory is read (proc: the host's /proc, for CPU jobs).
    #[arg(long, value_name = "SOURCE", value_parser = ["nvml", "nvidia-smi", "proc", "none"])]
    pub source: Option<String>,
    /// Machine-readable output on stdout.
    #[arg(long)]
    pub json: bool,
    /// The command and its arguments (after `--`).
    #[arg(value_name = "COMMAND", num_args = 0.., allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Where readings come from (default: NVML, else nvidia-smi when on PATH).
    #[arg(long, value_name = "SOURCE", value_parser = ["nvml", "nvidia-smi"], conflicts_with = "replay")]
    pub source: Option<String>,
    /// Time between samples: 1s, 500ms, 2m, or seconds.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// One sample, then exit.
    #[arg(long)]
    pub once: bool,
    /// One JSON object a sample on stdout.
    #[arg(long)]
    pub json: bool,
    /// Append every sample to FILE (JSON lines) for --replay.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Play a recording instead of reading GPUs.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Serve Prometheus text at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9464")]
    pub serve: Option<String>,
    /// Alert when a GPU's memory use reaches PERCENT of its total.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub alert: Option<f64>,
    /// Command run (without a shell) when an alert fires; GPU, used and total bytes and the top process in its environment.
    #[arg(long, value_name = "COMMAND", requires = "alert")]
    pub on_alert: Option<String>,
    /// Longest wait for one sample (a hung NVML call or nvidia-smi); the data is then marked stale and sampling goes on.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub sample_timeout: std::time::Duration,
    /// Also serve GPU memory under dcgm-exporter's names (DCGM_FI_DEV_FB_USED, DCGM_FI_DEV_FB_FREE, in MiB).
    #[arg(long)]
    pub dcgm_names: bool,
}

/// Parses `1s`, `500ms`, `2m`, `1h` or plain seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (use 1s, 500ms, 2m)"))?;
    let secs = v * mult;
    if !secs.is_finite() || !(0.01..=86_400.0).contains(&secs) {
        return Err(format!("{text:?}: give a duration between 10ms and 24h"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage"))?;
    if !(0.0..=100.0).contains(&v) || v == 0.0 {
        return Err(format!(
            "{text:?}: give a percentage above 0 and at most 100"
        ));
    }
    Ok(v)
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Machine-readable output on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Files to read ('-' for standard input; .gz is decompressed).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The batch size of the failing run: fixes then name a batch that fits.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// Machine-readable output on stdout: {"events": [...]}.
    #[arg(long)]
    pub json: bool,
    /// A PyTorch memory snapshot of the failing run: each event gains the snapshot's evidence for its device.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The snapshot file (a pickle from torch.cuda.memory._dump_snapshot(), or gzipped).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Machine-readable output on stdout: {"source", "devices": [...]}.
    #[arg(long)]
    pub json: bool,
    /// Allocation sites listed per device.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// Also write one self-contained HTML page (timeline and segment map) to OUT.
    #[arg(long, value_name = "OUT")]
    pub html: Option<PathBuf>,
}

/// `--bitsandbytes-version`: a release number such as 0.42.0.
fn parse_bitsandbytes_version(text: &str) -> Result<oomguard_core::estimate::Release, String> {
    parse_release(text, "0.42.0")
}

/// `--transformers-version`: a release number such as 4.38.2.
fn parse_transformers_version(text: &str) -> Result<oomguard_core::estimate::Release, String> {
    parse_release(text, "4.38.2")
}

/// A release number, or an error that shows one like `example`.
fn parse_release(text: &str, example: &str) -> Result<oomguard_core::estimate::Release, String> {
    oomguard_core::estimate::Release::parse(text)
        .ok_or_else(|| format!("{text:?} is not a release number such as {example}"))
}
