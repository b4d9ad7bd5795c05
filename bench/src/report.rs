//! BENCHMARKS.md: absolute figures, ratios and the targets, from one run's results.

use std::fmt::Write;

use crate::rss::Memory;
use crate::scenarios::{
    Batch, ColdStart, Concurrency, DUAL_STACK, Density, DensityVariant, Failures, Latency, Rss,
    RssFloor, Samples, Scaling,
};
use crate::stats::{Summary, median_ratio_interval, median_u64};

/// One plugin's binary sizes in bytes.
pub struct SizeRow {
    pub plugin: String,
    pub ours: u64,
    pub reference: u64,
    pub ours_stripped: u64,
    pub reference_stripped: u64,
}

/// Everything one run measured, plus where and how.
pub struct Results {
    pub latency: Vec<Latency>,
    pub concurrency: Vec<Concurrency>,
    pub scaling: Vec<Scaling>,
    pub density: Vec<Density>,
    pub sizes: Vec<SizeRow>,
    /// VERSION call times per plugin, ours then reference.
    pub startup: Vec<crate::scenarios::Startup>,
    pub cold_start: Vec<ColdStart>,
    /// Peak RSS per latency scenario, from the untimed traced pass.
    pub rss: Vec<Rss>,
    pub rss_floor: RssFloor,
    /// cluster-ipam on etcd beside host-local.
    pub cluster: crate::cluster::ClusterBench,
    pub context: Context,
}

pub struct Context {
    pub date: String,
    pub machine: String,
    pub command_line: String,
    pub load_start: String,
    pub load_end: String,
    pub quiet: bool,
    pub quick: bool,
    pub iterations: usize,
    pub rounds: usize,
    /// Traced ADD+DEL rounds per side in the peak-RSS pass.
    pub rss_runs: usize,
    pub ours_dir: String,
    pub reference_dir: String,
    /// What the host-local stores lived on (`store_fs`).
    pub stores: String,
    pub duration: String,
}

/// Median total wall time (ms) of the ADD or DEL batches of one side.
pub fn median_wall(rounds: &[(Batch, Batch)], add: bool) -> f64 {
    median_ms(
        rounds
            .iter()
            .map(|(a, d)| if add { a.wall } else { d.wall }),
    )
}

fn median_ms(walls: impl Iterator<Item = std::time::Duration>) -> f64 {
    let mut walls: Vec<f64> = walls.map(|w| w.as_secs_f64() * 1e3).collect();
    Summary::of_ms(&mut walls).median
}

/// Failed plugin calls anywhere in the run, both sides.
pub fn total_failures(r: &Results) -> usize {
    let latency = r.latency.iter().flat_map(|l| &l.sides).map(|s| &s.failures);
    let scaling = r
        .scaling
        .iter()
        .flat_map(|s| s.sides.iter().chain([&s.own_store]));
    let scaling = scaling.map(|s| &s.failures);
    let density = r.density.iter().flat_map(|d| &d.sides).map(|s| &s.failures);
    let rss = r.rss.iter().flat_map(|s| &s.sides).map(|s| &s.failures);
    let cold = r.cold_start.iter().flat_map(|c| &c.sides);
    latency
        .chain(scaling)
        .chain(density)
        .chain(cold.map(|s| &s.failures))
        .chain(rss)
        .map(|f| f.count)
        .sum::<usize>()
        + concurrency_failures(&r.concurrency)
        + crate::cluster::failures(&r.cluster)
}

fn batch_latencies(rounds: &[(Batch, Batch)], add: bool) -> Summary {
    let all: Vec<_> = rounds
        .iter()
        .flat_map(|(a, d)| if add { &a.latencies } else { &d.latencies }.clone())
        .collect();
    Summary::of(&all)
}

fn batch_failures(rounds: &[(Batch, Batch)]) -> Failures {
    let mut all = Failures::default();
    for (a, d) in rounds {
        all.absorb(&a.failures);
        all.absorb(&d.failures);
    }
    all
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

fn ms(v: f64) -> String {
    format!("{v:.2}")
}

fn failures_note(f: &Failures) -> String {
    match &f.first {
        Some(first) => format!("{} (first: `{}`)", f.count, one_line(first)),
        None => "0".into(),
    }
}

fn one_line(s: &str) -> String {
    let line: String = s.replace(['\n', '\r', '`', '|'], " ");
    line.chars().take(160).collect()
}

fn verdict(holds: Option<bool>) -> &'static str {
    match holds {
        Some(true) => "**holds**",
        Some(false) => "**does not hold**",
        None => "not measured in this run",
    }
}

/// "No slower": the median ratio is at most 1, or its bootstrap interval still reaches 1,
/// in which case this run cannot tell the two apart and the verdict says so.
fn no_slower_verdict(ratio: f64, interval: Option<(f64, f64)>) -> &'static str {
    match interval {
        _ if ratio <= 1.0 => verdict(Some(true)),
        Some((lo, _)) if lo <= 1.0 => "**holds within noise** (the interval includes 1)",
        _ => verdict(Some(false)),
    }
}

/// The 1-minute load at the end, if it rose past 2: the run was not quiet throughout even
/// if it started quiet.
fn load_rose(c: &Context) -> Option<f64> {
    let end: f64 = c.load_end.split_whitespace().next()?.parse().ok()?;
    (end >= 2.0).then_some(end)
}

/// The whole file. `analysis` is the hand-written part kept in `bench/analysis.md`.
pub fn markdown(r: &Results, svg_name: &str, analysis: &str) -> String {
    let c = &r.context;
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks: our plugins against the Go reference\n");
    let _ = writeln!(
        md,
        "Generated by `cni-bench` (`bench/`); regenerate with `bash scripts/bench.sh` \
         (static release build of the plugins, then the full run). Do not edit by hand: the \
         prose at the end comes from `bench/analysis.md`.\n"
    );
    if !c.quiet {
        let _ = writeln!(
            md,
            "> **NOISY RUN.** The 1-minute load average was {} at the start (target below \
             0.7): other work shared the 2 cores, so absolute figures are inflated. Ours and \
             the reference were interleaved call by call, so the *ratios* remain \
             meaningful; the absolute milliseconds are not.\n",
            c.load_start
        );
    }
    if let Some(end) = load_rose(c) {
        let _ = writeln!(
            md,
            "> **LOAD ROSE DURING THE RUN** to a 1-minute average of {end:.2} at the end \
             (start: {}): other work started on the shared machine. The phases measured last \
             (concurrency) were the most exposed; compare ratios, and prefer the earlier \
             phases' absolute figures.\n",
            c.load_start
        );
    }
    if c.quick {
        let _ = writeln!(
            md,
            "> **QUICK RUN** (`--quick`): few iterations, N = 10 only, 0 and 1 000 leases, \
             0 and 100 live attachments. \
             Smoke test, not a measurement.\n"
        );
    }
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| date (UTC) | {} |", c.date);
    let _ = writeln!(md, "| machine | {} |", c.machine);
    let _ = writeln!(
        md,
        "| load average at start (1, 5, 15 min) | {} |",
        c.load_start
    );
    let _ = writeln!(md, "| load average at end | {} |", c.load_end);
    let _ = writeln!(md, "| command | `{}` |", c.command_line);
    let _ = writeln!(md, "| ours | `{}` |", c.ours_dir);
    let _ = writeln!(
        md,
        "| reference | `{}` (Debian containernetworking-plugins) |",
        c.reference_dir
    );
    let _ = writeln!(
        md,
        "| iterations | {} per latency scenario, {} rounds per concurrency level |",
        c.iterations, c.rounds
    );
    let _ = writeln!(md, "| host-local stores (`dataDir`) | {} |", c.stores);
    let _ = writeln!(md, "| run time | {} |\n", c.duration);
    let _ = writeln!(
        md,
        "Method: ours are by default the static release binaries (`scripts/release.sh`), \
         what `scripts/install.sh` puts on a node, linked like the reference's Go binaries; \
         the `ours` row above names the directory measured. \
         Every call is a real exec of the plugin, joined to a throwaway \"host\" \
         netns, against a fresh throwaway container netns, cniVersion 1.0.0, host-local \
         `dataDir` in a tempdir on a journaled filesystem (`bench/src/store_fs.rs` says why). Time = fork to reap (`wait4`), which also gives the \
         child's CPU time. Ours and the reference alternate call by call (A B B A …), so \
         load drift hits both. Each DEL comes 50 ms (plus a random 0–8 ms) after its ADD, \
         untimed: a link deleted in its first tens of milliseconds costs the kernel ≈ 8 ms \
         more on both sides (`bench/src/scenarios.rs`). Namespace creation and teardown are \
         never timed. The chained plugins (tuning, portmap, firewall, bandwidth) are timed \
         alone, with bridge's ADD result as `prevResult` and, made untimed beforehand, the \
         container's `eth0` (a veth whose peer is in the host netns). Memory (private and \
         peak RSS) comes from a separate, untimed pass under ptrace (section 5).\n"
    );
    let _ = writeln!(md, "![latency distributions and concurrency]({svg_name})\n");

    targets(&mut md, r);
    latency_table(&mut md, r);
    startup_table(&mut md, r);
    cold_start_table(&mut md, &r.cold_start);
    floor_table(&mut md, r);
    concurrency_table(&mut md, &r.concurrency);
    scaling_table(&mut md, r);
    resources_table(&mut md, r);
    density_table(&mut md, r, &crate::svg::density_file_name(svg_name));
    crate::cluster::markdown(&mut md, &r.cluster);
    md.push_str(analysis);
    md
}

fn bridge(r: &Results) -> Option<&Latency> {
    r.latency.iter().find(|l| l.name.starts_with("bridge"))
}

fn targets(md: &mut String, r: &Results) {
    let _ = writeln!(md, "## Targets\n");
    let _ = writeln!(md, "| target | measured | verdict |\n|---|---|---|");
    if let Some(b) = bridge(r) {
        bridge_latency_targets(md, b);
    }
    dual_stack_target(md, r);
    concurrency_target(md, &r.concurrency);
    scaling_target(md, r);
    density_targets(md, r);
    cold_start_target(md, &r.cold_start);
    memory_and_size_targets(md, r);
    md.push('\n');
}

/// bridge ADD and DEL against the reference and against the ip-batch and netlink floors.
fn bridge_latency_targets(md: &mut String, b: &Latency) {
    let ours_add = Summary::of(&b.sides[0].add).median;
    let ref_add = Summary::of(&b.sides[1].add).median;
    let ours_del = Summary::of(&b.sides[0].del).median;
    let ref_del = Summary::of(&b.sides[1].del).median;
    let floor = b
        .floor_ip
        .as_ref()
        .map(|f| (Summary::of(&f.add).median, Summary::of(&f.del).median));
    let nl = b
        .floor_netlink
        .as_ref()
        .map(|f| (Summary::of(&f.add).median, Summary::of(&f.del).median));
    let _ = writeln!(
        md,
        "| bridge ADD ≥ 2× faster than the reference | reference / ours = {} ({} / {} ms) | {} |",
        ratio(ref_add, ours_add),
        ms(ref_add),
        ms(ours_add),
        verdict(Some(ref_add >= 2.0 * ours_add))
    );
    if let (Some((f_add, f_del)), Some((n_add, n_del))) = (floor, nl) {
        let _ = writeln!(
            md,
            "| bridge ADD within 1.2× of the floor | ours / ip-batch floor = {} ({} / {} ms); ours / in-process netlink floor = {} ({} ms) | {} |",
            ratio(ours_add, f_add),
            ms(ours_add),
            ms(f_add),
            ratio(ours_add, n_add),
            ms(n_add),
            verdict(Some(ours_add <= 1.2 * f_add))
        );
        let interval = median_ratio_interval(&b.sides[0].del, &b.sides[1].del);
        let _ = writeln!(
            md,
            "| bridge DEL no slower than the reference | ours / reference = {} ({} / {} ms){} | {} |",
            ratio(ours_del, ref_del),
            ms(ours_del),
            ms(ref_del),
            interval.map_or(String::new(), |(lo, hi)| format!(
                "; 95 % interval {lo:.2}–{hi:.2}"
            )),
            no_slower_verdict(ours_del / ref_del, interval)
        );
        let _ = writeln!(
            md,
            "| bridge DEL within 1.1× of the floor | ours / ip floor = {} ({} / {} ms); ours / netlink floor = {} ({} ms) | {} |",
            ratio(ours_del, f_del),
            ms(ours_del),
            ms(f_del),
            ratio(ours_del, n_del),
            ms(n_del),
            verdict(Some(ours_del <= 1.1 * f_del))
        );
    }
}

/// Dual-stack bridge ADD (IPv6 settling included) at least twice as fast as the reference's.
fn dual_stack_target(md: &mut String, r: &Results) {
    let what = "dual-stack bridge ADD ≥ 2× faster than the reference";
    match r.latency.iter().find(|l| l.name == DUAL_STACK) {
        Some(l) => {
            let ours = Summary::of(&l.sides[0].add).median;
            let reference = Summary::of(&l.sides[1].add).median;
            let _ = writeln!(
                md,
                "| {what} | reference / ours = {} ({} / {} ms) | {} |",
                ratio(reference, ours),
                ms(reference),
                ms(ours),
                verdict(Some(reference >= 2.0 * ours))
            );
        }
        None => {
            let _ = writeln!(md, "| {what} | – | {} |", verdict(None));
        }
    }
}

/// 200 concurrent ADDs: no failure and a wall time at least 3.5 times better (issue #18).
fn concurrency_target(md: &mut String, concurrency: &[Concurrency]) {
    match concurrency.iter().find(|c| c.n == 200) {
        Some(c) => {
            let (fo, fr) = (
                batch_failures(&c.rounds[0]).count,
                batch_failures(&c.rounds[1]).count,
            );
            let (wo, wr) = (
                median_wall(&c.rounds[0], true),
                median_wall(&c.rounds[1], true),
            );
            let wf = floor_wall(c, true);
            let _ = writeln!(
                md,
                "| 200 concurrent ADDs: 0 failures, wall ≥ 3.5× better | failures ours {fo}, reference {fr}; wall reference / ours = {} ({} / {} ms); the kernel floor alone takes {} ms, so no plugin can be more than {}× ahead | {} |",
                ratio(wr, wo),
                ms(wr),
                ms(wo),
                ms(wf),
                ratio(wr, wf),
                verdict(Some(fo == 0 && wr >= 3.5 * wo))
            );
        }
        None => {
            let _ = writeln!(
                md,
                "| 200 concurrent ADDs: 0 failures, wall ≥ 3.5× better | – | {} |",
                verdict(None)
            );
        }
    }
}

/// host-local DEL cost with 50 000 leases against an empty store.
fn scaling_target(md: &mut String, r: &Results) {
    let del_at = |leases: usize| {
        r.scaling
            .iter()
            .find(|s| s.leases == leases)
            .map(|s| Summary::of(&s.sides[0].del).median)
    };
    match (del_at(0), del_at(50_000)) {
        (Some(zero), Some(full)) => {
            let _ = writeln!(
                md,
                "| host-local DEL with 50 000 leases within 2× of 0 leases | {} / {} ms = {} | {} |",
                ms(full),
                ms(zero),
                ratio(full, zero),
                verdict(Some(full <= 2.0 * zero))
            );
        }
        _ => {
            let _ = writeln!(
                md,
                "| host-local DEL with 50 000 leases within 2× of 0 leases | – | {} |",
                verdict(None)
            );
        }
    }
}

/// Median ADD (or DEL) time of one side at one density row.
fn density_median(d: &Density, side: usize, add: bool) -> f64 {
    let s = &d.sides[side];
    Summary::of(if add { &s.add } else { &s.del }).median
}

/// The same variant's row with no live attachments.
fn density_base<'a>(r: &'a Results, d: &Density) -> Option<&'a Density> {
    r.density
        .iter()
        .find(|z| z.variant == d.variant && z.attachments == 0)
}

/// Ours at the most live attachments measured within 1.2× of ours at none, per masquerade
/// backend (the target; the spoof check's growth is in section 6 without one).
fn density_targets(md: &mut String, r: &Results) {
    for variant in [DensityVariant::MasqNftables, DensityVariant::MasqIptables] {
        let what = format!(
            "bridge {} ADD and DEL at 1 000 live attachments within 1.2× of 0",
            variant.label()
        );
        let top = r
            .density
            .iter()
            .filter(|d| d.variant == variant)
            .max_by_key(|d| d.attachments);
        let (Some(top), Some(zero)) = (top, top.and_then(|d| density_base(r, d))) else {
            let _ = writeln!(md, "| {what} | – | {} |", verdict(None));
            continue;
        };
        let grow = |side: usize, add: bool| {
            density_median(top, side, add) / density_median(zero, side, add)
        };
        let (add, del) = (grow(0, true), grow(0, false));
        let holds = (top.attachments >= 1_000).then_some(add <= 1.2 && del <= 1.2);
        let _ = writeln!(
            md,
            "| {what} | at {}: ADD {add:.2}×, DEL {del:.2}× (reference: {:.2}×, {:.2}×) | {} |",
            top.attachments,
            grow(1, true),
            grow(1, false),
            verdict(holds)
        );
    }
}

fn density_table(md: &mut String, r: &Results, plot: &str) {
    if r.density.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## 6. Density: bridge + host-local by live attachments on the bridge, with `ipMasq` or `macspoofchk`\n"
    );
    let _ = writeln!(
        md,
        "Each side's host netns first gets N live attachments made by its own bridge plugin, \
         each in its own container netns (veth on the bridge, lease, and the variant's \
         masquerade or spoof-check rules); then ADD and DEL of one more container are timed as \
         in section 1. The reference (1.1.1) predates `ipMasqBackend` and uses iptables in \
         both `ipMasq` rows. Growth = the median at N over the same side's median at 0. Both \
         sides share one kernel, so each side's host sees both sides' container netns (see \
         the analysis on `/proc/sys` lookups).\n\n![median latency against live attachments]({plot})\n"
    );
    let _ = writeln!(
        md,
        "| variant | live | ADD ours | ADD reference | ours / reference | DEL ours | DEL reference | ours / reference | ADD growth ours | ADD growth reference | DEL growth ours | DEL growth reference |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for d in &r.density {
        let m = |side: usize, add: bool| density_median(d, side, add);
        let grow = |side: usize, add: bool| {
            density_base(r, d).map_or(0.0, |z| m(side, add) / density_median(z, side, add))
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2}× | {:.2}× | {:.2}× | {:.2}× |",
            d.variant.label(),
            d.attachments,
            add_del_cells(m),
            grow(0, true),
            grow(1, true),
            grow(0, false),
            grow(1, false)
        );
        side_failure_notes(md, &d.sides);
    }
    md.push('\n');
    density_floor_table(md, r);
}

/// The kernel floor beside ours in the first variant: what the same ADD's kernel work costs at
/// each level, and what is left of ours without it.
fn density_floor_table(md: &mut String, r: &Results) {
    let rows: Vec<(&Density, &Samples)> = (r.density.iter())
        .filter_map(|d| Some((d, d.floor.as_ref()?)))
        .collect();
    let Some(&(zero, zero_floor)) = rows.iter().find(|(d, _)| d.attachments == 0) else {
        return;
    };
    let _ = writeln!(
        md,
        "Kernel floor at the same levels, interleaved with the {} rows on a third host netns \
         with as many live attachments: ADD = the in-process netlink work of section 2 plus \
         `accept_ra` of the bridge and of the new host veth through the host's `/proc/sys` \
         (the two sysctl opens bridge still makes), DEL = section 2's. No exec, no IPAM, no \
         firewall. \"Ours without the floor\" = ours' median minus the floor's.\n",
        zero.variant.label()
    );
    let _ = writeln!(
        md,
        "| live | floor ADD | floor DEL | floor ADD growth | floor DEL growth | ours ADD without the floor | its growth | ours DEL without the floor | its growth |\n|---|---|---|---|---|---|---|---|---|"
    );
    let median = |s: &Samples, add: bool| Summary::of(if add { &s.add } else { &s.del }).median;
    let own = |d: &Density, f: &Samples, add: bool| density_median(d, 0, add) - median(f, add);
    for (d, f) in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            d.attachments,
            ms(median(f, true)),
            ms(median(f, false)),
            ratio(median(f, true), median(zero_floor, true)),
            ratio(median(f, false), median(zero_floor, false)),
            ms(own(d, f, true)),
            ratio(own(d, f, true), own(zero, zero_floor, true)),
            ms(own(d, f, false)),
            ratio(own(d, f, false), own(zero, zero_floor, false))
        );
    }
    md.push('\n');
}

/// Private memory and binary size against the reference's; peak RSS for information.
fn memory_and_size_targets(md: &mut String, r: &Results) {
    let private = worst_memory_ratio(r, |m| m.private_kib);
    half_target_row(md, "private memory (`RssAnon` at exit)", private, "");
    let peak = worst_memory_ratio(r, |m| m.peak_kib);
    let _ = writeln!(
        md,
        "| peak RSS (information: mostly file pages shared with other processes) | ours / reference, worst: {:.2} ({}) | no target |",
        peak.0, peak.1
    );
    let sizes = r.sizes.iter().map(|s| {
        (
            s.ours_stripped as f64 / s.reference_stripped as f64,
            s.plugin.as_str(),
        )
    });
    half_target_row(md, "each binary", worst(sizes), " (stripped)");
}

/// A "≤ ½ of the reference's" target row from its worst ratio and where it was.
fn half_target_row(md: &mut String, what: &str, (ratio, place): (f64, &str), qualifier: &str) {
    let _ = writeln!(
        md,
        "| {what} ≤ ½ of the reference's{qualifier} | ours / reference, worst: {ratio:.2} ({place}) | {} |",
        verdict(Some(ratio <= 0.5))
    );
}

/// The largest ratio, with its label (0 and "" for none).
fn worst<'a>(ratios: impl Iterator<Item = (f64, &'a str)>) -> (f64, &'a str) {
    ratios.fold((0.0, ""), |a, b| if b.0 > a.0 { b } else { a })
}

/// The worst (largest) ours / reference ratio of one memory figure over every scenario's
/// ADD and DEL medians, with the scenario's name.
fn worst_memory_ratio(r: &Results, figure: impl Fn(&Memory) -> u64 + Copy) -> (f64, &'static str) {
    worst(r.rss.iter().flat_map(|l| {
        [true, false].map(|add| {
            let ours = memory_median(l, 0, add, figure);
            let reference = memory_median(l, 1, add, figure);
            (ours / reference.max(1.0), l.name)
        })
    }))
}

/// Median of one memory figure of one side (0 ours, 1 reference) for ADD or DEL, in KiB.
fn memory_median(l: &Rss, side: usize, add: bool, figure: impl Fn(&Memory) -> u64) -> f64 {
    let samples = if add {
        &l.sides[side].add
    } else {
        &l.sides[side].del
    };
    let values: Vec<u64> = samples.iter().map(figure).collect();
    median_u64(&values) as f64
}

fn latency_table(md: &mut String, r: &Results) {
    let _ = writeln!(md, "## 1. Latency per call (ms)\n");
    let _ = writeln!(
        md,
        "| scenario | verb | ours median | p95 | p99 | reference median | p95 | p99 | ours / reference (median) | failures ours / reference |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for l in &r.latency {
        for (verb, pick) in [("ADD", true), ("DEL", false)] {
            let o = Summary::of(if pick {
                &l.sides[0].add
            } else {
                &l.sides[0].del
            });
            let f = Summary::of(if pick {
                &l.sides[1].add
            } else {
                &l.sides[1].del
            });
            let _ = writeln!(
                md,
                "| {} | {verb} | {} | {} | {} | {} | {} | {} | **{}** | {} / {} |",
                l.name,
                ms(o.median),
                ms(o.p95),
                ms(o.p99),
                ms(f.median),
                ms(f.p95),
                ms(f.p99),
                ratio(o.median, f.median),
                failures_note(&l.sides[0].failures),
                failures_note(&l.sides[1].failures)
            );
        }
    }
    md.push('\n');
}

fn startup_table(md: &mut String, r: &Results) {
    if r.startup.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### Process start-up (VERSION call: exec to exit, no kernel work)\n"
    );
    let _ = writeln!(
        md,
        "| plugin | ours median | p95 | reference median | p95 | ours / reference |\n|---|---|---|---|---|---|"
    );
    for (plugin, times) in &r.startup {
        let (o, f) = (Summary::of(&times[0]), Summary::of(&times[1]));
        let _ = writeln!(
            md,
            "| {plugin} | {} | {} | {} | {} | **{}** |",
            ms(o.median),
            ms(o.p95),
            ms(f.median),
            ms(f.p95),
            ratio(o.median, f.median)
        );
    }
    md.push('\n');
}

/// The scenario the cold-start target is about: the first pods on a node, with masquerading.
const COLD_TARGET_SCENARIO: &str = "bridge ipMasq nftables";
/// Cold ADD at most this fraction of the reference's.
const COLD_TARGET_RATIO: f64 = 0.35;

fn cold_start_target(md: &mut String, cold_start: &[ColdStart]) {
    let what = format!(
        "cold-cache ADD, bridge `ipMasq` (nftables), ≤ {COLD_TARGET_RATIO}× the reference's"
    );
    let Some(c) = cold_start.iter().find(|c| c.name == COLD_TARGET_SCENARIO) else {
        let _ = writeln!(md, "| {what} | – | {} |", verdict(None));
        return;
    };
    let (ours, reference) = (&c.sides[0].add, &c.sides[1].add);
    let ratio = Summary::of(ours).median / Summary::of(reference).median;
    let interval = median_ratio_interval(ours, reference)
        .map_or_else(String::new, |(lo, hi)| format!(" ({lo:.2}–{hi:.2})"));
    let _ = writeln!(
        md,
        "| {what} | {ratio:.2}×{interval} | {} |",
        verdict((!ours.is_empty()).then_some(ratio <= COLD_TARGET_RATIO))
    );
}

/// The cold-start table and its target row, for `--cold-only`.
pub fn cold_start_section(cold_start: &[ColdStart]) -> String {
    let mut md = String::new();
    cold_start_table(&mut md, cold_start);
    let _ = writeln!(md, "| target | measured | verdict |\n|---|---|---|");
    cold_start_target(&mut md, cold_start);
    md
}

fn cold_start_table(md: &mut String, cold_start: &[ColdStart]) {
    if cold_start.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### Cold start (ADD with the page cache dropped)
"
    );
    let _ = writeln!(
        md,
        "Before each timed ADD the page cache, dentries and inodes are dropped (`sync`, then \
         `3` into `/proc/sys/vm/drop_caches`), so the call reads from disk everything it \
         runs: the plugin, host-local, `nft` or `iptables` and their shared libraries, as \
         the first pods after a node boots do. Ours and the reference alternate; one \
         untimed warm-up ADD per side first creates the bridge and the masquerade table. \
         The reference (1.1.1) uses iptables in both `ipMasq` rows. Read = the call's \
         block input (`ru_inblock` of the plugin and everything it ran), median; major \
         faults = its page faults that waited for the disk (`ru_majflt`), median: unlike \
         the time, neither depends on the machine's load.\n"
    );
    let _ = writeln!(
        md,
        "| scenario | ADD ours | ADD reference | ours / reference (95 % interval) | read ours (KiB) | read reference (KiB) | major faults ours | major faults reference |\n|---|---|---|---|---|---|---|---|"
    );
    for c in cold_start {
        let (o, f) = (Summary::of(&c.sides[0].add), Summary::of(&c.sides[1].add));
        let interval = median_ratio_interval(&c.sides[0].add, &c.sides[1].add)
            .map_or_else(String::new, |(lo, hi)| format!(" ({lo:.2}–{hi:.2})"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | **{}**{interval} | {} | {} | {} | {} |",
            c.name,
            ms(o.median),
            ms(f.median),
            ratio(o.median, f.median),
            median_u64(&c.read_kib[0]),
            median_u64(&c.read_kib[1]),
            median_u64(&c.major_faults[0]),
            median_u64(&c.major_faults[1])
        );
        side_failure_notes(md, &c.sides);
    }
    md.push('\n');
}

fn floor_table(md: &mut String, r: &Results) {
    let Some(b) = bridge(r) else { return };
    let (Some(nl), Some(ip)) = (&b.floor_netlink, &b.floor_ip) else {
        return;
    };
    let _ = writeln!(md, "## 2. Kernel floor (bridge work without CNI)\n");
    let _ = writeln!(
        md,
        "ADD = veth with its peer created straight into the container netns, enslave, up; \
         in the container: address, up, default route. DEL = delete the container's veth. \
         *In-process netlink*: one running process, our `cni-netlink` crate, {} netlink \
         round trips per ADD, container netns opened inside the timing; no exec at all. \
         *ip -batch*: two `ip -batch -` processes for ADD (host side, container side), \
         one `ip link del` for DEL.\n",
        b.floor_round_trips
    );
    let _ = writeln!(
        md,
        "| | ADD median | p95 | DEL median | p95 | ours / this (ADD) | ours / this (DEL) | reference / this (ADD) | reference / this (DEL) |\n|---|---|---|---|---|---|---|---|---|"
    );
    let ours = (Summary::of(&b.sides[0].add), Summary::of(&b.sides[0].del));
    let reference = (Summary::of(&b.sides[1].add), Summary::of(&b.sides[1].del));
    for (name, s) in [("in-process netlink", nl), ("ip -batch", ip)] {
        let (a, d) = (Summary::of(&s.add), Summary::of(&s.del));
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | **{}** | **{}** | {} | {} |",
            ms(a.median),
            ms(a.p95),
            ms(d.median),
            ms(d.p95),
            ratio(ours.0.median, a.median),
            ratio(ours.1.median, d.median),
            ratio(reference.0.median, a.median),
            ratio(reference.1.median, d.median)
        );
    }
    md.push('\n');
}

/// The concurrency table and its target, for `--concurrency-only`.
pub fn concurrency_section(concurrency: &[Concurrency]) -> String {
    let mut md = String::new();
    concurrency_table(&mut md, concurrency);
    let _ = writeln!(md, "| target | measured | verdict |\n|---|---|---|");
    concurrency_target(&mut md, concurrency);
    md
}

/// Failed calls of every batch, both sides.
pub fn concurrency_failures(concurrency: &[Concurrency]) -> usize {
    concurrency
        .iter()
        .flat_map(|c| &c.rounds)
        .map(|rounds| batch_failures(rounds).count)
        .sum()
}

/// The median wall of the burst's kernel floor (ADD or DEL).
fn floor_wall(c: &Concurrency, add: bool) -> f64 {
    median_ms(c.floor.iter().map(|&(a, d)| if add { a } else { d }))
}

fn concurrency_table(md: &mut String, concurrency: &[Concurrency]) {
    if concurrency.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## 3. Concurrency: N simultaneous bridge+host-local ADDs on one network, then N DELs\n"
    );
    let _ = writeln!(
        md,
        "All N plugins are started back to back (fork+exec of each takes well under a \
         millisecond) and reaped in exit order; wall = first start to last exit, median \
         over rounds; per-call latencies pooled over rounds. The kernel floor is the same \
         burst's netlink work (veth into the container, port, address, route; then the \
         deletes) from N threads of one process, no exec: no plugin can finish the burst \
         sooner, so reference / floor is the most any plugin could be ahead by.\n"
    );
    let _ = writeln!(
        md,
        "| N | verb | ours wall | reference wall | reference / ours | kernel floor wall | reference / floor | ours per-call median / p95 / max | reference per-call median / p95 / max | failures ours / reference |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for c in concurrency {
        let (ours, reference) = (batch_failures(&c.rounds[0]), batch_failures(&c.rounds[1]));
        let (fo, fr) = (ours.count, reference.count);
        for (verb, add) in [("ADD", true), ("DEL", false)] {
            let (wo, wr) = (
                median_wall(&c.rounds[0], add),
                median_wall(&c.rounds[1], add),
            );
            let (lo, lr) = (
                batch_latencies(&c.rounds[0], add),
                batch_latencies(&c.rounds[1], add),
            );
            let failures = if add {
                format!(
                    "{fo} / {fr}{}",
                    ours.first
                        .iter()
                        .chain(reference.first.iter())
                        .next()
                        .map(|f| format!(" (first: `{}`)", one_line(f)))
                        .unwrap_or_default()
                )
            } else {
                "(counted with ADD)".into()
            };
            let wf = floor_wall(c, add);
            let _ = writeln!(
                md,
                "| {} | {verb} | {} | {} | **{}** | {} | {} | {} / {} / {} | {} / {} / {} | {failures} |",
                c.n,
                ms(wo),
                ms(wr),
                ratio(wr, wo),
                ms(wf),
                ratio(wr, wf),
                ms(lo.median),
                ms(lo.p95),
                ms(lo.max),
                ms(lr.median),
                ms(lr.p95),
                ms(lr.max)
            );
        }
    }
    md.push('\n');
}

fn scaling_table(md: &mut String, r: &Results) {
    if r.scaling.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## 4. host-local with leases already held (10.30.0.0/16)\n"
    );
    let _ = writeln!(
        md,
        "Leases written beforehand in the Go format (one file per IP holding \
         `<id>\\r\\n<ifname>`), `last_reserved_ip.0` just past them: what the Go plugin \
         leaves, so the reference's own store and, for ours, a store it has to read as it \
         finds it. Each iteration: ADD (allocation) then DEL (release) of a new container ID. \
         Growth = the median at N leases over the same side's median at 0.\n"
    );
    let zero = r.scaling.iter().find(|s| s.leases == 0);
    let _ = writeln!(
        md,
        "| leases | ADD ours | ADD reference | ours / reference | DEL ours | DEL reference | ours / reference | ADD growth ours | ADD growth reference | DEL growth ours | DEL growth reference |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let median = |s: &Samples, add: bool| Summary::of(if add { &s.add } else { &s.del }).median;
    for s in &r.scaling {
        let m = |i: usize, add: bool| median(&s.sides[i], add);
        let grow = |i: usize, add: bool| {
            zero.map_or("–".into(), |z| ratio(m(i, add), median(&z.sides[i], add)))
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            s.leases,
            add_del_cells(m),
            grow(0, true),
            grow(1, true),
            grow(0, false),
            grow(1, false)
        );
        side_failure_notes(md, &s.sides);
    }
    let _ = writeln!(
        md,
        "\nOurs again, on the same leases written by our own store code (each lease with its \
         by-attachment index entry), as on a node that has run only ours; interleaved with \
         the two above. The warm-up ADD scans once and writes the index stamp; the timed \
         ADDs then skip the scan while the stamp holds.\n"
    );
    let _ = writeln!(
        md,
        "| leases | ADD ours (own store) | DEL ours (own store) | ADD growth | DEL growth | ADD / reference's on its store |\n|---|---|---|---|---|---|"
    );
    for s in &r.scaling {
        let (add, del) = (median(&s.own_store, true), median(&s.own_store, false));
        let grow = |add: bool, value: f64| {
            zero.map_or("–".into(), |z| ratio(value, median(&z.own_store, add)))
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | **{}** |",
            s.leases,
            ms(add),
            ms(del),
            grow(true, add),
            grow(false, del),
            ratio(add, median(&s.sides[1], true))
        );
        if s.own_store.failures.count > 0 {
            let _ = writeln!(
                md,
                "\nFailures (ours, own store): {}\n",
                failures_note(&s.own_store.failures)
            );
        }
    }
    md.push('\n');
}

/// `ADD ours | ADD reference | ours / reference | DEL ours | DEL reference | ours / reference`
/// from the medians `m(side, add)`, the ratios in bold.
fn add_del_cells(m: impl Fn(usize, bool) -> f64) -> String {
    format!(
        "{} | {} | **{}** | {} | {} | **{}**",
        ms(m(0, true)),
        ms(m(1, true)),
        ratio(m(0, true), m(1, true)),
        ms(m(0, false)),
        ms(m(1, false)),
        ratio(m(0, false), m(1, false))
    )
}

/// The first failure of each side that had failed calls, under its table row.
fn side_failure_notes(md: &mut String, sides: &[Samples; 2]) {
    for (side, samples) in ["ours", "reference"].iter().zip(sides) {
        if samples.failures.count > 0 {
            let _ = writeln!(
                md,
                "\nFailures ({side}): {}\n",
                failures_note(&samples.failures)
            );
        }
    }
}

fn resources_table(md: &mut String, r: &Results) {
    let _ = writeln!(md, "## 5. CPU time, memory and binary size\n");
    let _ = writeln!(
        md,
        "CPU = user + system time of the plugin and its reaped IPAM child (`wait4` \
         rusage), median over the latency run. On 2 cores this, not latency, is what bounds \
         the concurrency results.\n"
    );
    let _ = writeln!(
        md,
        "| scenario | ADD CPU ours | reference | ours / reference | DEL CPU ours | reference | ours / reference |\n|---|---|---|---|---|---|---|"
    );
    for l in &r.latency {
        let q = |i: usize, add: bool| {
            Summary::of(if add {
                &l.sides[i].cpu_add
            } else {
                &l.sides[i].cpu_del
            })
            .median
        };
        let _ = writeln!(
            md,
            "| {} | {} ms | {} ms | **{}** | {} ms | {} ms | **{}** |",
            l.name,
            ms(q(0, true)),
            ms(q(1, true)),
            ratio(q(0, true), q(1, true)),
            ms(q(0, false)),
            ms(q(1, false)),
            ratio(q(0, false), q(1, false))
        );
    }
    md.push('\n');
    rss_table(md, r);
    let _ = writeln!(
        md,
        "\n| plugin | ours (as installed) | reference (as installed) | ours stripped | reference stripped | ours / reference (stripped) |\n|---|---|---|---|---|---|"
    );
    for s in &r.sizes {
        let _ = writeln!(
            md,
            "| {} | {} B | {} B | {} B | {} B | **{:.2}** |",
            s.plugin,
            s.ours,
            s.reference,
            s.ours_stripped,
            s.reference_stripped,
            s.ours_stripped as f64 / s.reference_stripped as f64
        );
    }
    md.push('\n');
}

/// One row per scenario: ADD and DEL medians of one memory figure, ours and reference.
fn memory_table(md: &mut String, r: &Results, title: &str, figure: impl Fn(&Memory) -> u64 + Copy) {
    let _ = writeln!(
        md,
        "| scenario | ADD {title} ours | reference | ours / reference | DEL ours | reference | ours / reference |\n|---|---|---|---|---|---|---|"
    );
    for l in &r.rss {
        let q = |side: usize, add: bool| memory_median(l, side, add, figure);
        let _ = writeln!(
            md,
            "| {} | {:.0} KiB | {:.0} KiB | **{}** | {:.0} KiB | {:.0} KiB | **{}** |",
            l.name,
            q(0, true),
            q(1, true),
            ratio(q(0, true), q(1, true)),
            q(0, false),
            q(1, false),
            ratio(q(0, false), q(1, false))
        );
    }
}

fn rss_table(md: &mut String, r: &Results) {
    let f = &r.rss_floor;
    let _ = writeln!(
        md,
        "Private memory = `RssAnon` in `/proc/<pid>/status`: the process's own anonymous \
         pages (heap, stacks, written data); the memory target is about it. Peak RSS = the \
         kernel's high-water mark (`VmHWM`), mostly file pages of the binary and libc that \
         every process mapping them shares; kept as information. Both are read while each \
         process of the call is stopped at its exit under ptrace, which follows fork, vfork \
         and clone (so the host-local child of bridge and macvlan counts); a call's figure \
         is the largest of its processes', median over {} traced ADD+DEL rounds per side in \
         a separate pass that is never timed. `ru_maxrss` of the timed calls is not used: at \
         exec the kernel folds the pre-exec mm's mark into it, so a forked or vfork'ed child \
         carries its parent's memory, and on this kernel it read 30–200 KiB below the RSS \
         the same process still had at exit (`bench/src/rss.rs`). `/bin/true`, which does \
         nothing, in this run: peak {} KiB this way; {} KiB as `ru_maxrss` of a fork of \
         cni-bench (the floor a fork of the bench would impose).\n",
        r.context.rss_runs, f.traced_kib, f.forked_kib
    );
    memory_table(md, r, "private memory (`RssAnon` at exit)", |m| {
        m.private_kib
    });
    memory_table(md, r, "peak RSS (`VmHWM`)", |m| m.peak_kib);
    for l in &r.rss {
        for (i, side) in ["ours", "reference"].iter().enumerate() {
            if l.sides[i].failures.count > 0 {
                let _ = writeln!(
                    md,
                    "\nFailures in the RSS pass ({} {side}): {}",
                    l.name,
                    failures_note(&l.sides[i].failures)
                );
            }
        }
    }
}
