//! `cni-bench`: our CNI plugins against the Go reference, side by side in one run.
//!
//! ```text
//! cargo run -p cni-bench --release -- [--ours DIR] [--reference DIR] [--iterations N]
//!                                     [--quick] [--out BENCHMARKS.md]
//!                                     [--cluster-only | --cold-only | --concurrency-only]
//! ```
//!
//! Measures per-plugin ADD/DEL latency with the kernel floor, concurrency, host-local
//! scaling, bridge with `ipMasq` or `macspoofchk` at 0 to 1 000 live attachments (density),
//! ADD with the page cache dropped before each call (cold start), peak RSS (in an untimed
//! pass under ptrace), binary size, and cluster-ipam on a real etcd beside host-local
//! (latency, allocations per second), and writes a Markdown report plus two SVG plots (same
//! path, `.svg` and `-density.svg`). "Ours" are by default the binaries a node runs: the
//! static release build (`scripts/release.sh`, installed by `scripts/install.sh`), linked
//! like the reference's Go binaries. Needs root: everything
//! runs in throwaway network namespaces (`cni_conformance::Netns` guards), never in the
//! machine's own.

mod cluster;
mod etcd_floor;
mod floor;
mod http2_frame;
mod report;
mod rss;
mod scenarios;
mod spawn;
mod stats;
mod store_fs;
mod svg;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::report::{Results, SizeRow};
use crate::scenarios::Dirs;

/// The hand-written findings appended to the report, kept in the crate so regenerating the
/// file keeps them. Read when the report is written (not compiled in), so it can be
/// edited while a long run is going.
const ANALYSIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/analysis.md");
/// The load average under which the machine counts as quiet enough for absolute figures.
const QUIET_LOAD: f64 = 0.7;

struct Options {
    ours: PathBuf,
    reference: PathBuf,
    iterations: Option<usize>,
    quick: bool,
    out: PathBuf,
    /// One section measured on its own and written to `out` alone.
    only: Option<Only>,
}

/// The sections that can be measured on their own (`--<section>-only`), for a run that
/// leaves the other sections' figures alone.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Only {
    Cluster,
    Cold,
    Concurrency,
}

impl Only {
    fn flag(self) -> &'static str {
        match self {
            Only::Cluster => "--cluster-only",
            Only::Cold => "--cold-only",
            Only::Concurrency => "--concurrency-only",
        }
    }
}

/// The repository (the workspace root).
fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
}

/// Where `scripts/release.sh` builds the static binaries it packs.
const RELEASE_BUILD: &str = "target/x86_64-unknown-linux-musl/release";

fn parse_args() -> Result<Options> {
    let root = repo_root();
    let mut options = Options {
        ours: root.join(RELEASE_BUILD),
        reference: PathBuf::from("/usr/lib/cni"),
        iterations: None,
        quick: false,
        out: root.join("BENCHMARKS.md"),
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--ours" => options.ours = value()?.into(),
            "--reference" => options.reference = value()?.into(),
            "--iterations" => options.iterations = Some(value()?.parse()?),
            "--quick" => options.quick = true,
            "--cluster-only" => options.only = Some(Only::Cluster),
            "--cold-only" => options.only = Some(Only::Cold),
            "--concurrency-only" => options.only = Some(Only::Concurrency),
            "--out" => options.out = value()?.into(),
            "-h" | "--help" => {
                println!(
                    "usage: cni-bench [--ours DIR] [--reference DIR] [--iterations N] [--quick] [--out BENCHMARKS.md] [--cluster-only | --cold-only | --concurrency-only]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(options)
}

/// Every plugin the full run benchmarks.
const BENCHMARKED: [&str; 8] = [
    "bridge",
    "macvlan",
    "host-local",
    "loopback",
    "tuning",
    "portmap",
    "firewall",
    "bandwidth",
];
/// The plugins `--cold-only` runs.
const COLD_START_PLUGINS: [&str; 3] = ["bridge", "host-local", "loopback"];

/// Root (for the namespaces) and `plugins` on both sides, before anything runs.
fn ensure_root_and_plugins(options: &Options, plugins: &[&str]) -> Result<()> {
    if nix::unistd::geteuid().as_raw() != 0 {
        bail!("cni-bench must run as root: it creates network namespaces");
    }
    let sides = [
        (&options.ours, "build ours with `bash scripts/release.sh`"),
        (
            &options.reference,
            "install Debian's containernetworking-plugins",
        ),
    ];
    for (dir, remedy) in sides {
        for plugin in plugins {
            if !dir.join(plugin).is_file() {
                bail!("{} not found ({remedy})", dir.join(plugin).display());
            }
        }
    }
    Ok(())
}

/// Writes the Markdown report and its SVG plot, and prints the tables for CI logs.
fn write_report(options: &Options, results: &Results, started: Instant) -> Result<()> {
    let svg_path = options.out.with_extension("svg");
    let svg_name = svg_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::write(&svg_path, svg::render(results))
        .with_context(|| format!("writing {}", svg_path.display()))?;
    let density_path = svg_path.with_file_name(svg::density_file_name(&svg_name));
    std::fs::write(&density_path, svg::render_density(results))
        .with_context(|| format!("writing {}", density_path.display()))?;
    let analysis = std::fs::read_to_string(ANALYSIS).unwrap_or_default();
    let md = report::markdown(results, &svg_name, &analysis);
    std::fs::write(&options.out, &md)
        .with_context(|| format!("writing {}", options.out.display()))?;
    // The tables on stdout too, for CI logs.
    let tables_end = md.find("## Analysis").unwrap_or(md.len());
    println!("{}", &md[..tables_end]);
    eprintln!(
        "wrote {} and {} in {:.0} s",
        options.out.display(),
        svg_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Rounds per concurrency level; the wall of each side is the median over them. Seven, not
/// three: in ten `--concurrency-only` runs of three rounds within one hour (2026-12-03, same
/// binaries or A/B pairs within noise) the ratio at 200 ranged over 3.25-4.21, the
/// reference's wall alone over 1.60-2.17 s.
const CONCURRENCY_ROUNDS: usize = 7;

fn main() -> Result<()> {
    let options = parse_args()?;
    if let Some(only) = options.only {
        return section_only(&options, only);
    }
    ensure_root_and_plugins(&options, &BENCHMARKED)?;
    spawn::install_signal_handlers()?;
    spawn::raise_fd_limit();
    let _stores = store_fs::set_up();
    // Leftovers of an earlier run that was SIGKILLed (ours are cnitest-<dead pid>-*).
    for name in cni_conformance::cleanup_stale() {
        eprintln!("removed stale namespace {name}");
    }

    let started = Instant::now();
    let load_start = load_average();
    let quiet = load_start
        .split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .is_some_and(|l| l < QUIET_LOAD);
    let iterations = options
        .iterations
        .unwrap_or(if options.quick { 8 } else { 200 });
    let warmup = if options.quick { 1 } else { 3 };
    let (conc_ns, rounds, levels): (&[usize], usize, &[usize]) = if options.quick {
        (&[10], 1, &[0, 1_000])
    } else {
        (&[10, 50, 200], CONCURRENCY_ROUNDS, &[0, 1_000, 50_000])
    };
    let scale_iterations = if options.quick {
        iterations
    } else {
        iterations.min(60)
    };
    let dirs = Dirs {
        ours: options.ours.clone(),
        reference: options.reference.clone(),
    };

    let startup = scenarios::startup(&dirs, iterations)?;
    // A few rounds only: every call drops the whole machine's page cache.
    let cold_start = scenarios::cold_start(&dirs, if options.quick { 2 } else { 20 })?;
    let latency = scenarios::latency(&dirs, iterations, warmup)?;
    // Scaling before concurrency: the concurrency rounds drop up to 400 namespaces at a
    // time, which the kernel tears down in the background afterwards. Run right after them,
    // the 0-lease host-local ADD came out 6.7 ms in two runs against 3.4 ms in the latency
    // phase (suspected cause: that teardown; not proven).
    let scaling = scenarios::scaling(&dirs, levels, scale_iterations, warmup)?;
    let concurrency = scenarios::concurrency(&dirs, conc_ns, rounds)?;
    // Quick stops at 100 live attachments: making 1 000 per side and variant takes minutes.
    let (density_levels, density_iterations): (&[usize], usize) = if options.quick {
        (&[0, 100], iterations)
    } else {
        (&[0, 100, 1_000], iterations.min(30))
    };
    let density = scenarios::density(&dirs, density_levels, density_iterations, warmup)?;
    let cluster = cluster::measure(
        &options.ours,
        iterations,
        if options.quick { 50 } else { 1000 },
    )?;
    // Untimed, so last: ptrace stops would distort any timing, and nothing here is timed.
    let rss_runs = if options.quick { 3 } else { 20 };
    let (rss, rss_floor) = scenarios::peak_rss(&dirs, rss_runs)?;
    let sizes = sizes(&dirs)?;

    let results = Results {
        latency,
        concurrency,
        scaling,
        density,
        sizes,
        startup,
        cold_start,
        rss,
        rss_floor,
        cluster,
        context: report::Context {
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M"]),
            machine: machine(),
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
            load_start,
            load_end: load_average(),
            quiet,
            quick: options.quick,
            iterations,
            rounds,
            rss_runs,
            // Relative to the repository when under it: the report names no machine's paths.
            ours_dir: (options.ours.strip_prefix(repo_root()))
                .unwrap_or(&options.ours)
                .display()
                .to_string(),
            reference_dir: options.reference.display().to_string(),
            stores: store_fs::described(),
            duration: format!("{:.0} s", started.elapsed().as_secs_f64()),
        },
    };
    write_report(&options, &results, started)?;
    // CI runs --quick so the tool cannot rot: a plugin call that failed must fail the job,
    // not just show up as a number in a table nobody reads.
    let failures = report::total_failures(&results);
    if failures > 0 {
        bail!("{failures} plugin call(s) failed; see the failure columns in the report");
    }
    Ok(())
}

/// `--<section>-only`: that section alone, headed by when and under what load it was
/// measured. `--iterations` sets the cluster latency iterations, the cold-start rounds and
/// the concurrency rounds.
fn section_only(options: &Options, only: Only) -> Result<()> {
    let load_start = load_average();
    let dirs = Dirs {
        ours: options.ours.clone(),
        reference: options.reference.clone(),
    };
    let _stores = store_fs::set_up();
    let (md, failures) = match only {
        Only::Cluster => {
            let iterations = options
                .iterations
                .unwrap_or(if options.quick { 8 } else { 200 });
            let allocations = if options.quick { 50 } else { 1000 };
            let bench = cluster::measure(&options.ours, iterations, allocations)?;
            let mut md = String::new();
            cluster::markdown(&mut md, &bench);
            (md, cluster::failures(&bench))
        }
        Only::Cold | Only::Concurrency => {
            let plugins: &[&str] = if only == Only::Cold {
                &COLD_START_PLUGINS
            } else {
                &["bridge", "host-local"]
            };
            ensure_root_and_plugins(options, plugins)?;
            spawn::install_signal_handlers()?;
            if only == Only::Cold {
                let rounds = options
                    .iterations
                    .unwrap_or(if options.quick { 2 } else { 20 });
                let cold = scenarios::cold_start(&dirs, rounds)?;
                let failures = cold
                    .iter()
                    .flat_map(|c| &c.sides)
                    .map(|s| s.failures.count)
                    .sum();
                (report::cold_start_section(&cold), failures)
            } else {
                spawn::raise_fd_limit();
                let rounds = options.iterations.unwrap_or(CONCURRENCY_ROUNDS);
                let concurrency = scenarios::concurrency(&dirs, &[50, 200], rounds)?;
                let failures = report::concurrency_failures(&concurrency);
                (report::concurrency_section(&concurrency), failures)
            }
        }
    };
    write_section_only(options, only.flag(), &load_start, md)?;
    if failures > 0 {
        bail!("{failures} plugin call(s) failed");
    }
    Ok(())
}

/// Writes one section measured on its own to `out`, headed (after its title) by when and
/// under what load it was measured, and prints it.
fn write_section_only(options: &Options, flag: &str, load_start: &str, md: String) -> Result<()> {
    let md = md.replacen(
        "\n\n",
        &format!(
            "\n\nMeasured on its own (`cni-bench {flag}`) on {} UTC, {}; load average \
             {load_start} at the start, {} at the end; host-local stores on {}.\n\n",
            command_output("date", &["-u", "+%Y-%m-%d %H:%M"]),
            machine(),
            load_average(),
            store_fs::described()
        ),
        1,
    );
    std::fs::write(&options.out, &md)
        .with_context(|| format!("writing {}", options.out.display()))?;
    println!("{md}");
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    format!(
        "{model}, {cores} cores, {:.1} GiB RAM, Linux {}",
        mem_kib as f64 / 1048576.0,
        command_output("uname", &["-r"])
    )
}

/// Installed and stripped sizes. Both sides are stripped the same way (`strip` on a copy)
/// so the comparison does not depend on how each was packaged.
fn sizes(dirs: &Dirs) -> Result<Vec<SizeRow>> {
    let tmp = tempfile::Builder::new()
        .prefix("cni-bench-size-")
        .tempdir()?;
    let mut rows = Vec::new();
    // Every plugin we replace (the conformance suite's list).
    for plugin in cni_conformance::suite::PLUGINS {
        let (ours, reference) = (dirs.ours.join(plugin), dirs.reference.join(plugin));
        if !ours.is_file() || !reference.is_file() {
            continue;
        }
        let stripped = |path: &Path, tag: &str| -> Result<u64> {
            let copy = tmp.path().join(format!("{plugin}-{tag}"));
            let status = Command::new("strip")
                .arg("-o")
                .arg(&copy)
                .arg(path)
                .status()?;
            if !status.success() {
                bail!("strip {} failed", path.display());
            }
            Ok(std::fs::metadata(&copy)?.len())
        };
        rows.push(SizeRow {
            plugin: plugin.to_owned(),
            ours: std::fs::metadata(&ours)?.len(),
            reference: std::fs::metadata(&reference)?.len(),
            ours_stripped: stripped(&ours, "ours")?,
            reference_stripped: stripped(&reference, "ref")?,
        });
    }
    Ok(rows)
}
