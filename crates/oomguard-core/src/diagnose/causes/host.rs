//! The host: the kernel's OOM killer, host RAM the CPU allocator could not
//! get, and a container's memory limit.

use super::{sizes, CauseId, Ranking};
use crate::oom::OomEvent;
use crate::size::format_size as fs;

/// The host ran out: the killer or the CPU allocator says so; a stated
/// limit with the killer is the container's; a huge host request is a size
/// gone wrong; the batch and the data loading lower host memory.
pub(super) fn host(r: &mut Ranking, event: &OomEvent) {
    host_ran_out(r, event);
    container_limit(r, event);
    sizes::host_request_suspect(r, event);
    r.add(
        CauseId::BatchTooLarge,
        0.4,
        "a smaller batch, fewer DataLoader workers or memory-mapped data lower host memory",
    );
}

fn host_ran_out(r: &mut Ranking, event: &OomEvent) {
    let evidence = if event.facts.oom_killer() {
        format!(
            "the kernel's OOM killer ended {}",
            event.facts.call.as_deref().unwrap_or("the process")
        )
    } else {
        match event.memory.requested_bytes {
            Some(q) => format!("the CPU allocator could not get {} of host RAM", fs(q)),
            None => "the CPU allocator ran out of host RAM".into(),
        }
    };
    r.add(CauseId::HostMemory, 0.85, evidence);
    // SIGKILL alone is likely the OOM killer, not certainly.
    if event.facts.signal_only_kill {
        r.undecided();
    }
}

/// The reason a container runtime gives a container the kernel killed in
/// its memory cgroup: Kubernetes' container status (`Reason: OOMKilled`,
/// "Assign Memory Resources to Containers and Pods": a container that
/// exceeds its memory limit is terminated) and `docker inspect`'s
/// `State.OOMKilled`.
const CONTAINER_KILLED: &str = "OOMKilled";

/// The container's limit ran out, not the machine: the OOM killer with a
/// cgroup limit in the text, or a runtime reporting the container killed.
fn container_limit(r: &mut Ranking, event: &OomEvent) {
    let check = Some("the pod's or container's memory limit (kubectl describe pod, docker inspect) against the process's peak RSS");
    if let Some(limit) = event
        .memory
        .allowed_bytes
        .filter(|_| event.facts.oom_killer())
    {
        r.add_checked(
            CauseId::MemoryCap,
            0.88,
            format!("the container's memory cgroup is capped at {} and reached it: the limit, not the machine, ran out", fs(limit)),
            check,
        );
    } else if event.message.contains(CONTAINER_KILLED) {
        r.add_checked(
            CauseId::MemoryCap,
            0.88,
            "the container runtime reports the container OOMKilled: the kernel killed it at its memory cgroup's limit, which is below what it needs (a node out of memory kills containers too: the check tells them apart)",
            check,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::oom::{Framework, MemoryFigures};

    #[test]
    fn the_oom_killer_is_host_memory_and_with_a_limit_the_container_s_cap() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.facts.kind = crate::oom::EventKind::OomKill;
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::HostMemory));
        e.memory.allowed_bytes = Some(16 * GIB);
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        assert!(r.0.iter().any(|c| c.check.is_some()));
    }

    #[test]
    fn a_cpu_allocation_failure_names_its_request() {
        let e = pytorch(0, 3 * GIB, 0);
        let mut r = Ranking::new();
        host_ran_out(&mut r, &e);
        assert!(r.0[0].evidence.contains("3.00 GiB"), "{}", r.0[0].evidence);
        // Without the killer, a stated cap is not the container's.
        let mut capped = e.clone();
        capped.memory.allowed_bytes = Some(8 * GIB);
        let mut r = Ranking::new();
        container_limit(&mut r, &capped);
        assert!(r.0.is_empty());
    }

    #[test]
    fn a_container_reported_oomkilled_ran_out_of_its_limit() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.device.kind = crate::oom::DeviceKind::Cpu;
        e.message =
            "Last State:     Terminated\n  Reason:       OOMKilled\n  Exit Code:    137".into();
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::MemoryCap));
        assert_eq!(r.score(CauseId::HostMemory), Some(0.85));
    }

    #[test]
    fn a_kill_known_only_from_its_signal_leaves_the_ranking_undecided() {
        let mut e = event(Framework::Other, MemoryFigures::default());
        e.facts.kind = crate::oom::EventKind::OomKill;
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert!(!r.1);
        e.facts.signal_only_kill = true;
        let mut r = Ranking::new();
        host(&mut r, &e);
        assert_eq!(r.top(), Some(CauseId::HostMemory));
        assert!(r.1);
    }
}
