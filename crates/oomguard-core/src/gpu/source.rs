//! Where samples come from, behind one trait: NVML (loaded at run time, so
//! the binary starts on machines without a driver; behind the `nvml` cargo
//! feature), `nvidia-smi`'s CSV queries, or a recording played back, chosen
//! in one place ([`open`]). A source must not substitute 0 for a value it
//! could not read, and no sample waits longer than [`SAMPLE_TIMEOUT`] on
//! `nvidia-smi`.

use super::nvidia_smi::{mib_value, parse_rows};
use super::sample::{GpuSample, GpuState, ProcessState};
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest one `nvidia-smi` query may take. A healthy driver answers in
/// well under a second; a hung one (a GPU fallen off the bus, a driver
/// upgrade half done) never does.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a source cannot give samples. The messages name no command-line
/// flag: what to try instead is for the caller to say.
#[derive(Debug)]
pub enum SourceError {
    /// No NVIDIA driver: NVML could not be loaded (NVML's own message).
    NoDriver(String),
    /// `nvidia-smi` failed or printed something unreadable (its message).
    NvidiaSmi(String),
    /// `nvidia-smi` could not be started, or gave no answer in time.
    NvidiaSmiRun {
        /// The program run.
        bin: PathBuf,
        /// Why it could not run (a timeout is [`std::io::ErrorKind::TimedOut`]).
        source: std::io::Error,
    },
    /// No `nvidia-smi` on `PATH`.
    NoNvidiaSmi,
    /// A recording that is truncated or not oomguard's.
    Replay {
        /// The recording as the caller named it.
        path: String,
        /// The line at fault, from 1.
        line: usize,
        /// What is wrong with that line.
        detail: String,
    },
    /// A recording that could not be read.
    Io {
        /// The recording as the caller named it.
        path: String,
        /// The error reading it.
        source: std::io::Error,
    },
    /// The source did not open in the time allowed (a hung driver).
    OpenTimedOut(Duration),
    /// This build left NVML out (the `nvml` cargo feature).
    NoNvmlSupport,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::NoDriver(d) => write!(
                f,
                "no NVIDIA driver on this machine (NVML could not be loaded: {d})"
            ),
            SourceError::NvidiaSmi(d) => write!(f, "nvidia-smi: {d}"),
            SourceError::NvidiaSmiRun { bin, .. } => write!(f, "running {}", bin.display()),
            SourceError::NoNvidiaSmi => write!(f, "no nvidia-smi on PATH"),
            SourceError::Replay { path, line, detail } => {
                write!(f, "{path}:{line}: not an oomguard recording: {detail}")
            }
            SourceError::Io { path, .. } => write!(f, "cannot read {path}"),
            SourceError::OpenTimedOut(limit) => write!(
                f,
                "the GPU source did not open within {} s (a hung driver?)",
                limit.as_secs_f64()
            ),
            SourceError::NoNvmlSupport => write!(
                f,
                "this oomguard was built without NVML support (the `nvml` cargo feature)"
            ),
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SourceError::NvidiaSmiRun { source, .. } | SourceError::Io { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// A source of samples. Sources are `Send` so that a sampler can run them
/// on a thread of their own, away from a caller that must stay responsive.
pub trait GpuSource: Send {
    /// A short name for messages ("NVML", "nvidia-smi", "replay").
    fn name(&self) -> &'static str;
    /// The next sample; `None` when a recording has ended.
    fn sample(&mut self) -> Result<Option<GpuSample>, SourceError>;
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The user owning `pid`, from /proc and the user database.
pub fn process_user(pid: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // The owner of /proc/PID is the process's real user.
    let uid = std::fs::metadata(format!("/proc/{pid}")).ok()?.uid();
    // Through the C library's user database, so that directory users
    // (LDAP, SSSD: the usual case on shared GPU clusters) have names too;
    // a uid with no name is shown as the number.
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => Some(user.name),
        _ => Some(uid.to_string()),
    }
}

/// The command name of `pid` (/proc/PID/comm).
#[cfg(feature = "nvml")]
fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Samples through NVML, loaded at run time. Memory comes from
/// `nvmlDeviceGetMemoryInfo_v2` (nvml-wrapper 0.13), whose "used" matches
/// what `nvidia-smi` prints; v1 counts reserved memory as used.
#[cfg(feature = "nvml")]
pub struct NvmlSource {
    nvml: nvml_wrapper::Nvml,
}

#[cfg(feature = "nvml")]
impl NvmlSource {
    pub fn open() -> Result<NvmlSource, SourceError> {
        nvml_wrapper::Nvml::init()
            .map(|nvml| NvmlSource { nvml })
            .map_err(|e| SourceError::NoDriver(e.to_string()))
    }
}

/// Without the `nvml` feature: opening says so.
#[cfg(not(feature = "nvml"))]
pub struct NvmlSource {
    _none: (),
}

#[cfg(not(feature = "nvml"))]
impl NvmlSource {
    pub fn open() -> Result<NvmlSource, SourceError> {
        Err(SourceError::NoNvmlSupport)
    }
}

#[cfg(not(feature = "nvml"))]
impl GpuSource for NvmlSource {
    fn name(&self) -> &'static str {
        "NVML"
    }

    fn sample(&mut self) -> Result<Option<GpuSample>, SourceError> {
        Err(SourceError::NoNvmlSupport)
    }
}

#[cfg(feature = "nvml")]
impl GpuSource for NvmlSource {
    fn name(&self) -> &'static str {
        "NVML"
    }

    fn sample(&mut self) -> Result<Option<GpuSample>, SourceError> {
        let count = self
            .nvml
            .device_count()
            .map_err(|e| SourceError::NoDriver(e.to_string()))?;
        let mut gpus = Vec::new();
        let mut processes = Vec::new();
        for index in 0..count {
            let Ok(device) = self.nvml.device_by_index(index) else {
                continue;
            };
            let memory = device.memory_info().ok();
            gpus.push(GpuState {
                index,
                uuid: device.uuid().ok(),
                name: device.name().ok(),
                total_bytes: memory.as_ref().map(|m| m.total),
                used_bytes: memory.as_ref().map(|m| m.used),
                free_bytes: memory.as_ref().map(|m| m.free),
            });
            let mut seen = std::collections::BTreeSet::new();
            let compute = device.running_compute_processes().unwrap_or_default();
            let graphics = device.running_graphics_processes().unwrap_or_default();
            for p in compute.into_iter().chain(graphics) {
                if !seen.insert(p.pid) {
                    continue;
                }
                let used = match p.used_gpu_memory {
                    nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => Some(b),
                    nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => None,
                };
                processes.push(ProcessState {
                    gpu: index,
                    pid: p.pid,
                    name: process_name(p.pid),
                    user: process_user(p.pid),
                    used_bytes: used,
                });
            }
        }
        Ok(Some(GpuSample {
            time: now(),
            gpus,
            processes,
        }))
    }
}

/// Samples through `nvidia-smi --query-gpu` and `--query-compute-apps`.
pub struct NvidiaSmiSource {
    bin: PathBuf,
}

impl NvidiaSmiSource {
    pub fn new(bin: PathBuf) -> NvidiaSmiSource {
        NvidiaSmiSource { bin }
    }

    fn query(&self, args: &[&str]) -> Result<String, SourceError> {
        let out = output_within(
            Command::new(&self.bin).args(args).stdin(Stdio::null()),
            SAMPLE_TIMEOUT,
        )
        .map_err(|source| SourceError::NvidiaSmiRun {
            bin: self.bin.clone(),
            source,
        })?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(if out.stderr.is_empty() {
                &out.stdout
            } else {
                &out.stderr
            })
            .trim()
            .to_string();
            return Err(SourceError::NvidiaSmi(msg));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Runs `cmd` to its end and collects its output, killing it when it takes
/// longer than `limit`.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let mut readers = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        readers.push(std::thread::spawn(move || {
            let mut buf = Vec::new();
            // Bounded: a query's answer is a few KiB.
            let _ = stream.take(4 << 20).read_to_end(&mut buf);
            buf
        }));
    }
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", limit.as_secs_f64()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut outs = readers.into_iter().map(|r| r.join().unwrap_or_default());
    Ok(std::process::Output {
        status,
        stdout: outs.next().unwrap_or_default(),
        stderr: outs.next().unwrap_or_default(),
    })
}

/// Which source to read, as the user chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChoice {
    /// NVML when it loads, else `nvidia-smi` when it is on PATH.
    Auto,
    /// NVML only.
    Nvml,
    /// `nvidia-smi` only.
    NvidiaSmi,
    /// A recording played back from this file.
    Replay(PathBuf),
}

/// `nvidia-smi` on PATH.
pub fn nvidia_smi_on_path() -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join("nvidia-smi"))
        .find(|p| p.is_file())
}

/// Opens the chosen source once.
pub fn open(choice: &SourceChoice) -> Result<Box<dyn GpuSource + Send>, SourceError> {
    let smi = || {
        nvidia_smi_on_path()
            .map(|bin| Box::new(NvidiaSmiSource::new(bin)) as Box<dyn GpuSource + Send>)
    };
    match choice {
        SourceChoice::Replay(path) => Ok(Box::new(ReplaySource::open(path)?)),
        SourceChoice::Nvml => Ok(Box::new(NvmlSource::open()?)),
        SourceChoice::NvidiaSmi => smi().ok_or(SourceError::NoNvidiaSmi),
        SourceChoice::Auto => match NvmlSource::open() {
            Ok(s) => Ok(Box::new(s)),
            Err(nvml_error) => smi().ok_or(nvml_error),
        },
    }
}

/// [`open`], given up after `limit`: loading NVML talks to the driver, and
/// a hung driver never answers. The attempt to open is left to itself.
pub fn open_within(
    choice: &SourceChoice,
    limit: Duration,
) -> Result<Box<dyn GpuSource + Send>, SourceError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let choice = choice.clone();
    std::thread::spawn(move || {
        let _ = tx.send(open(&choice));
    });
    rx.recv_timeout(limit)
        .unwrap_or(Err(SourceError::OpenTimedOut(limit)))
}

/// GPUs from `--query-gpu=index,uuid,name,memory.total,memory.used,memory.free`.
pub fn parse_gpus(text: &str) -> Vec<GpuState> {
    let unknown = |v: &str| !v.starts_with('[');
    parse_rows(
        text,
        &[
            "index",
            "uuid",
            "name",
            "memory.total",
            "memory.used",
            "memory.free",
        ],
    )
    .into_iter()
    .filter_map(|r| {
        Some(GpuState {
            index: r["index"].parse().ok()?,
            uuid: Some(r["uuid"].clone()).filter(|v| unknown(v)),
            name: Some(r["name"].clone()).filter(|v| unknown(v)),
            total_bytes: mib_value(&r["memory.total"]),
            used_bytes: mib_value(&r["memory.used"]),
            free_bytes: mib_value(&r["memory.free"]),
        })
    })
    .collect()
}

/// Processes from `--query-compute-apps=gpu_uuid,pid,process_name,used_memory`.
pub fn parse_processes(text: &str, gpus: &[GpuState]) -> Vec<ProcessState> {
    let by_uuid: HashMap<&str, u32> = gpus
        .iter()
        .filter_map(|g| Some((g.uuid.as_deref()?, g.index)))
        .collect();
    parse_rows(text, &["gpu_uuid", "pid", "process_name", "used_memory"])
        .into_iter()
        .filter_map(|r| {
            let pid: u32 = r["pid"].parse().ok()?;
            // A process on a GPU the GPU query did not list (it fell off
            // the bus between the two queries) is left out, never put on
            // GPU 0.
            let gpu = *by_uuid.get(r["gpu_uuid"].as_str())?;
            Some(ProcessState {
                gpu,
                pid,
                name: Some(r["process_name"].clone()).filter(|v| !v.starts_with('[')),
                user: process_user(pid),
                used_bytes: mib_value(&r["used_memory"]),
            })
        })
        .collect()
}

impl GpuSource for NvidiaSmiSource {
    fn name(&self) -> &'static str {
        "nvidia-smi"
    }

    /// The GPUs and the processes come from two runs of the tool a moment
    /// apart; a process that allocates in between makes its usage and the
    /// GPU's free memory disagree. Readers that combine the two (what a
    /// process can reach) take a robust statistic over many samples.
    fn sample(&mut self) -> Result<Option<GpuSample>, SourceError> {
        let gpus = parse_gpus(&self.query(&[
            "--query-gpu=index,uuid,name,memory.total,memory.used,memory.free",
            "--format=csv,noheader,nounits",
        ])?);
        if gpus.is_empty() {
            return Err(SourceError::NvidiaSmi("it listed no GPU".into()));
        }
        let apps = self.query(&[
            "--query-compute-apps=gpu_uuid,pid,process_name,used_memory",
            "--format=csv,noheader,nounits",
        ])?;
        let processes = parse_processes(&apps, &gpus);
        Ok(Some(GpuSample {
            time: now(),
            gpus,
            processes,
        }))
    }
}

/// Plays a recording: one JSON sample per line, as `--record` writes them.
pub struct ReplaySource {
    path: String,
    reader: BufReader<std::fs::File>,
    line: usize,
}

/// A recorded line longer than this is not a sample.
const MAX_LINE: u64 = 16 << 20;

impl ReplaySource {
    pub fn open(path: &Path) -> Result<ReplaySource, SourceError> {
        let io = |source| SourceError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(io(std::io::ErrorKind::IsADirectory.into()));
        }
        Ok(ReplaySource {
            path: path.display().to_string(),
            reader: BufReader::new(file),
            line: 0,
        })
    }
}

impl GpuSource for ReplaySource {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn sample(&mut self) -> Result<Option<GpuSample>, SourceError> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            self.line += 1;
            let n = std::io::Read::take(&mut self.reader, MAX_LINE)
                .read_until(b'\n', &mut buf)
                .map_err(|source| SourceError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            if !buf.ends_with(b"\n") && n as u64 >= MAX_LINE {
                return Err(SourceError::Replay {
                    path: self.path.clone(),
                    line: self.line,
                    detail: "a line over 16 MiB".into(),
                });
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return serde_json::from_slice::<GpuSample>(&buf)
                .map(Some)
                .map_err(|e| SourceError::Replay {
                    path: self.path.clone(),
                    line: self.line,
                    detail: if buf.ends_with(b"\n") {
                        e.to_string()
                    } else {
                        format!("truncated ({e})")
                    },
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn io_failures_keep_the_io_error_as_their_source() {
        let e = ReplaySource::open(Path::new("/nonexistent/rec.jsonl"))
            .err()
            .expect("no such recording");
        assert_eq!(e.to_string(), "cannot read /nonexistent/rec.jsonl");
        let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));
        let mut smi = NvidiaSmiSource::new(PathBuf::from("/nonexistent/nvidia-smi"));
        let e = smi.sample().expect_err("no such program");
        assert!(matches!(e, SourceError::NvidiaSmiRun { .. }), "{e:?}");
        assert!(e.source().is_some(), "{e:?}");
    }

    #[test]
    fn the_owner_of_a_process_is_named() {
        // This test's own process: its owner has a name in the user database
        // (root in CI), or, failing that, the uid as a number.
        let me = std::process::id();
        let user = process_user(me).unwrap();
        assert!(!user.is_empty());
        assert_eq!(process_user(u32::MAX), None);
    }

    #[test]
    fn nvidia_smi_queries_parse_into_samples() {
        let gpus = parse_gpus("0, GPU-aaaa, NVIDIA L40S, 46068, 9123, 36346\n1, GPU-bbbb, NVIDIA L40S, [N/A], [N/A], [N/A]\n");
        assert_eq!(gpus[0].total_bytes, Some(46068 << 20));
        assert_eq!(gpus[1].used_bytes, None);
        let procs = parse_processes(
            "GPU-bbbb, 3858903, VLLM::EngineCore, 6265\nGPU-aaaa, 12, python, [N/A]\n",
            &gpus,
        );
        assert_eq!(
            (procs[0].gpu, procs[0].pid, procs[0].used_bytes),
            (1, 3858903, Some(6265 << 20))
        );
        assert_eq!(procs[1].used_bytes, None);
        // A GPU the GPU query did not list: the process is left out.
        let procs = parse_processes("GPU-cccc, 77, python, 100\n", &gpus);
        assert!(procs.is_empty(), "{procs:?}");
    }

    #[test]
    fn a_hung_query_times_out() {
        let started = Instant::now();
        let e =
            output_within(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        let ok = output_within(Command::new("echo").arg("hi"), SAMPLE_TIMEOUT).unwrap();
        assert_eq!(ok.stdout, b"hi\n");
    }

    #[test]
    #[cfg(not(feature = "nvml"))]
    fn without_the_feature_nvml_says_so() {
        let e = open(&SourceChoice::Nvml).err().unwrap();
        assert!(e.to_string().contains("built without NVML support"), "{e}");
    }

    #[test]
    #[cfg(feature = "nvml")]
    fn no_driver_says_so_without_naming_a_flag() {
        // Without an NVIDIA driver the error says so; what to type instead
        // is the caller's to say (the binary names its flags).
        if let Err(e) = NvmlSource::open() {
            assert!(matches!(e, SourceError::NoDriver(_)), "{e:?}");
            assert!(e.to_string().contains("no NVIDIA driver"), "{e}");
            assert!(!e.to_string().contains("--"), "{e}");
        }
    }
}
