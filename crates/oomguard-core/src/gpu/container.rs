//! Which container and Kubernetes pod a GPU process belongs to, read from
//! `/proc` the way node agents do: the process's cgroup path names the pod
//! UID and the container ID (cgroup v1 and v2, cgroupfs and systemd
//! drivers, containerd, CRI-O, Docker, Podman); the pod's name is the
//! container's `HOSTNAME` (Kubernetes sets it to the pod name unless the pod
//! uses the host's network); its namespace is the service-account file
//! Kubernetes mounts into every container that has a token
//! (`/var/run/secrets/kubernetes.io/serviceaccount/namespace`), else a
//! `POD_NAMESPACE` the pod exports. The pid inside the container's PID
//! namespace comes from the `NSpid` line of `/proc/PID/status`.
//!
//! NVML reports host pids; these readings need the host's PID namespace
//! (`hostPID: true` for a DaemonSet) and the right to read other processes'
//! `/proc` entries. Whatever cannot be read stays `None`.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where a process runs, as far as `/proc` tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// The container ID (64 hex digits as the runtime names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The Kubernetes pod UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The pod's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The pod's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The process's pid inside its own PID namespace, when that differs
    /// from the host pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_pid: Option<u32>,
}

impl ContainerInfo {
    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        *self == ContainerInfo::default()
    }

    /// The container ID shortened to 12 digits, as `docker ps` and
    /// `crictl ps` show it.
    pub fn short_id(&self) -> Option<&str> {
        self.container_id
            .as_deref()
            .map(|id| &id[..id.len().min(12)])
    }
}

/// Reads a process's container facts under `proc_root` (normally `/proc`).
pub fn read(proc_root: &Path, pid: u32) -> ContainerInfo {
    let dir = proc_root.join(pid.to_string());
    let read = |name: &str| std::fs::read(dir.join(name)).ok();
    let (container_id, pod_uid) = read("cgroup")
        .map(|b| parse_cgroup(&String::from_utf8_lossy(&b)))
        .unwrap_or((None, None));
    let environ = read("environ").unwrap_or_default();
    let in_kubernetes = pod_uid.is_some();
    let pod = in_kubernetes
        .then(|| env_value(&environ, "HOSTNAME"))
        .flatten();
    let namespace = in_kubernetes
        .then(|| {
            std::fs::read_to_string(
                dir.join("root/var/run/secrets/kubernetes.io/serviceaccount/namespace"),
            )
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| env_value(&environ, "POD_NAMESPACE"))
        })
        .flatten();
    let container_pid = read("status")
        .and_then(|b| namespace_pid(&String::from_utf8_lossy(&b)))
        .filter(|&p| p != pid);
    ContainerInfo {
        container_id,
        pod_uid,
        pod,
        namespace,
        container_pid,
    }
}

/// `(container ID, pod UID)` from the text of `/proc/PID/cgroup`.
fn parse_cgroup(text: &str) -> (Option<String>, Option<String>) {
    let mut container = None;
    let mut pod = None;
    for line in text.lines() {
        // hierarchy-ID:controllers:path
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        for segment in path.split('/') {
            if pod.is_none() {
                pod = pod_uid(segment);
            }
            if let Some(id) = container_id(segment) {
                container = Some(id);
            }
        }
        if container.is_some() && pod.is_some() {
            break;
        }
    }
    (container, pod)
}

/// A pod UID from one cgroup path segment: `pod<uid>` (cgroupfs driver) or
/// `kubepods-<qos>-pod<uid with _>.slice` (systemd driver).
fn pod_uid(segment: &str) -> Option<String> {
    let at = segment.rfind("pod")?;
    if !segment.starts_with("pod") && !segment.starts_with("kubepods") {
        return None;
    }
    let raw = segment[at + 3..].trim_end_matches(".slice");
    let uid = raw.replace('_', "-");
    let shape_ok = uid.len() == 36
        && uid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && uid.matches('-').count() == 4;
    shape_ok.then_some(uid)
}

/// A container ID from one cgroup path segment: 64 hex digits, bare
/// (cgroupfs) or as `<runtime>-<id>.scope` (systemd: `docker-`,
/// `cri-containerd-`, `crio-`, `libpod-`).
fn container_id(segment: &str) -> Option<String> {
    let s = segment.trim_end_matches(".scope");
    let id = s.rsplit('-').next().unwrap_or(s);
    (id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_string())
}

/// The innermost pid of the `NSpid:` line of `/proc/PID/status`.
fn namespace_pid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// The value of `name` in a NUL-separated environment block.
fn env_value(environ: &[u8], name: &str) -> Option<String> {
    environ
        .split(|&b| b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_string)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c9d2e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c";
    const UID: &str = "8d5c6a0e-1b2c-4d3e-9f8a-7b6c5d4e3f2a";

    #[test]
    fn cgroup_paths_of_every_driver_and_runtime() {
        let systemd_v2 = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope\n",
            UID.replace('-', "_")
        );
        let cgroupfs_v1 = format!(
            "12:memory:/kubepods/besteffort/pod{UID}/{ID}\n11:cpu,cpuacct:/kubepods/besteffort/pod{UID}/{ID}\n"
        );
        let guaranteed = format!("0::/kubepods/pod{UID}/{ID}\n");
        for text in [systemd_v2, cgroupfs_v1, guaranteed] {
            assert_eq!(
                parse_cgroup(&text),
                (Some(ID.to_string()), Some(UID.to_string())),
                "{text}"
            );
        }
        let docker = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(parse_cgroup(&docker), (Some(ID.to_string()), None));
        let podman = format!("0::/user.slice/user-1000.slice/libpod-{ID}.scope/container\n");
        assert_eq!(parse_cgroup(&podman).0.as_deref(), Some(ID));
        // A host process: neither.
        assert_eq!(
            parse_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n"),
            (None, None)
        );
        assert_eq!(parse_cgroup("garbage\n\n::\n"), (None, None));
    }

    #[test]
    fn namespace_pid_and_environment() {
        assert_eq!(namespace_pid("Name:\tpython\nNSpid:\t81234\t7\n"), Some(7));
        assert_eq!(namespace_pid("NSpid:\t42\n"), Some(42));
        assert_eq!(namespace_pid("Name:\tx\n"), None);
        let env = b"PATH=/usr/bin\0HOSTNAME=train-7f9c-0\0EMPTY=\0";
        assert_eq!(env_value(env, "HOSTNAME").as_deref(), Some("train-7f9c-0"));
        assert_eq!(env_value(env, "EMPTY"), None);
        assert_eq!(env_value(env, "HOST"), None);
    }

    #[test]
    fn reads_a_process_from_a_proc_tree() {
        let root = std::env::temp_dir().join(format!("oomguard-proc-{}", std::process::id()));
        let dir = root.join("81234");
        let sa = dir.join("root/var/run/secrets/kubernetes.io/serviceaccount");
        std::fs::create_dir_all(&sa).unwrap();
        std::fs::write(dir.join("cgroup"), format!("0::/kubepods/pod{UID}/{ID}\n")).unwrap();
        std::fs::write(dir.join("environ"), b"HOSTNAME=llama-serve-0\0").unwrap();
        std::fs::write(dir.join("status"), "NSpid:\t81234\t12\n").unwrap();
        std::fs::write(sa.join("namespace"), "inference\n").unwrap();
        let info = read(&root, 81234);
        assert_eq!(info.pod.as_deref(), Some("llama-serve-0"));
        assert_eq!(info.namespace.as_deref(), Some("inference"));
        assert_eq!(info.container_pid, Some(12));
        assert_eq!(info.short_id(), Some(&ID[..12]));
        // A process that is gone: nothing known.
        assert!(read(&root, 1).is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
