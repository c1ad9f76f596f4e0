//! The standard `process_*` metrics (CPU, memory, descriptors, threads, start time), read from
//! `/proc/self` at each scrape; prometheus-client has no process collector of its own. On a
//! system without `/proc` they are simply absent.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Linux's clock tick for `/proc` times (`USER_HZ`, 100 on every architecture it supports).
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads this process's facts when encoded.
#[derive(Debug)]
pub struct Process;

/// What `/proc/self` says at one instant.
struct Facts {
    cpu_seconds: f64,
    threads: i64,
    start_time_seconds: Option<f64>,
    virtual_bytes: i64,
    resident_bytes: i64,
    open_fds: i64,
    max_fds: Option<i64>,
}

impl Facts {
    fn read() -> Option<Facts> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // fields after the command name, which is in parentheses and may hold spaces
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // field n of proc(5) is f[n - 3]
        let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        // boot time: /proc/stat is hidden under systemd's ProcSubset=pid, so it may be missing
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())
        });
        // resident memory in kB from status: the page size differs between machines
        let rss_kib = std::fs::read_to_string("/proc/self/status")
            .ok()?
            .lines()
            .find_map(|l| {
                l.strip_prefix("VmRSS:")?
                    .split_whitespace()
                    .next()?
                    .parse::<i64>()
                    .ok()
            })?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| {
                l.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3)?.parse::<i64>().ok())
            });
        Some(Facts {
            cpu_seconds: (num(14)? + num(15)?) as f64 / TICKS_PER_SECOND,
            threads: num(20)? as i64,
            start_time_seconds: boot
                .map(|b| b as f64 + num(22).unwrap_or(0) as f64 / TICKS_PER_SECOND),
            virtual_bytes: num(23)? as i64,
            resident_bytes: rss_kib * 1024,
            open_fds,
            max_fds,
        })
    }
}

impl Collector for Process {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = Facts::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(enc.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            ("process_threads", "Threads", p.threads as f64),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size, in bytes",
                p.virtual_bytes as f64,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size, in bytes",
                p.resident_bytes as f64,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                p.open_fds as f64,
            ),
        ];
        let optional = [
            p.max_fds
                .map(|m| ("process_max_fds", "Descriptor limit", m as f64)),
            p.start_time_seconds.map(|t| {
                (
                    "process_start_time_seconds",
                    "Start time since the Unix epoch, in seconds",
                    t,
                )
            }),
        ];
        for (name, help, v) in gauges.into_iter().chain(optional.into_iter().flatten()) {
            let g = ConstGauge::new(v);
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}
