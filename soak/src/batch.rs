//! One soak cycle: plan a batch of calls from the RNG, run them in parallel (some get a
//! SIGKILL part-way), apply what they did to the model, DEL whatever a killed or failed
//! call left half-made, and now and then delete a live attachment's netns.

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use cni_conformance::{Invocation, Lab, Netns, plugin_path};
use serde_json::{Value, json};

use crate::model::{Attachment, IFNAME, Model};
use crate::rng::Rng;
use crate::runner::{self, Kill, Outcome};
use crate::world::{Kind, Network};

/// Calls per batch at most (one per attachment), plus at most one GC.
const BATCH_SIZE: usize = 6;
/// Percent of calls that get a SIGKILL, after 0..=KILL_WINDOW_MS; half of them to the
/// plugin alone (see [`runner::Kill`]).
const KILL_PERCENT: u64 = 15;
const KILL_WINDOW_MS: u64 = 60;
const GC_PERCENT: u64 = 25;
const CHECK_PERCENT: u64 = 35;
/// Percent of DELs a runtime repeats after they succeeded (DEL must be idempotent).
const REPEAT_DEL_PERCENT: u64 = 15;
/// Percent of batches after which a live attachment's netns is deleted under it.
const VANISH_PERCENT: u64 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Add,
    Check,
    Del,
    Gc,
}

impl Verb {
    pub const ALL: [Verb; 4] = [Verb::Add, Verb::Check, Verb::Del, Verb::Gc];

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "ADD",
            Verb::Check => "CHECK",
            Verb::Del => "DEL",
            Verb::Gc => "GC",
        }
    }
}

/// Counts for the closing lines.
#[derive(Debug, Default)]
pub struct Stats {
    /// Calls per verb, in [`Verb::ALL`]'s order.
    pub calls: [u64; 4],
    /// Calls that did what a runtime may expect (success, or our own SIGKILL).
    pub passed: u64,
    pub sigkills: u64,
    pub vanished_netns: u64,
}

/// One planned call: `slot` is unused for GC.
#[derive(Debug)]
struct Op {
    network: usize,
    slot: usize,
    verb: Verb,
    invocation: Invocation,
    stdin: Vec<u8>,
    kill: Option<Kill>,
    /// A DEL to run once more after it succeeds.
    repeat: bool,
}

/// The soak's node, model and bookkeeping.
pub struct Soak {
    pub lab: Lab,
    pub networks: Vec<Network>,
    pub model: Model,
    pub rng: Rng,
    pub stats: Stats,
    /// What went wrong, one line (or a few) per violation.
    pub violations: Vec<String>,
}

impl Soak {
    /// Runs one cycle; the caller checks the invariants afterwards.
    pub fn cycle(&mut self) {
        let ops = self.plan();
        let outcomes = self.run_all(&ops);
        let mut retry_del = Vec::new();
        for (op, outcome) in ops.iter().zip(&outcomes) {
            if self.apply(op, outcome) {
                retry_del.push((op.network, op.slot));
            }
        }
        self.cleanup(retry_del);
        if self.rng.chance(VANISH_PERCENT) {
            self.vanish_one();
        }
    }

    /// Picks up to [`BATCH_SIZE`] distinct attachments and a verb for each, and maybe a GC.
    /// An ADD's attachment enters the model at once (without a result), so a GC in the
    /// same batch lists it as valid, as a runtime lists the containers it is creating.
    fn plan(&mut self) -> Vec<Op> {
        let mut used = HashSet::new();
        let mut ops = Vec::new();
        for _ in 0..BATCH_SIZE {
            let network = self.rng.below(self.networks.len());
            let slot = self.rng.below(self.model.slots[network].len());
            if !used.insert((network, slot)) {
                continue;
            }
            let verb = match &self.model.slots[network][slot] {
                None => {
                    let attachment = self.new_attachment(network, slot);
                    self.model.slots[network][slot] = Some(attachment);
                    Verb::Add
                }
                Some(a) if a.checkable() && self.rng.chance(CHECK_PERCENT) => Verb::Check,
                Some(_) => Verb::Del,
            };
            let kill = self.kill();
            let mut op = self.op(network, slot, verb, kill);
            op.repeat = verb == Verb::Del && self.rng.chance(REPEAT_DEL_PERCENT);
            ops.push(op);
        }
        if self.rng.chance(GC_PERCENT) {
            let network = self.rng.below(self.networks.len());
            let kill = self.kill();
            ops.push(self.op(network, 0, Verb::Gc, kill));
        }
        ops
    }

    fn new_attachment(&mut self, network: usize, slot: usize) -> Attachment {
        let id = self.model.next_id(network, slot);
        let netns = self.networks[network]
            .needs_netns()
            .then(|| Netns::with_label(&format!("n{network}s{slot}")));
        let netns_path = netns
            .as_ref()
            .map_or(self.lab.container().path(), Netns::path)
            .to_owned();
        Attachment {
            id,
            netns,
            netns_path,
            unset_netns_when_gone: false,
            result: None,
        }
    }

    /// When and how to SIGKILL a planned call, if at all.
    fn kill(&mut self) -> Option<Kill> {
        if !self.rng.chance(KILL_PERCENT) {
            return None;
        }
        Some(Kill {
            after: Duration::from_millis(self.rng.next_u64() % (KILL_WINDOW_MS + 1)),
            plugin_only: self.rng.chance(50),
        })
    }

    /// The call for `verb` on an attachment (or, for GC, on the network) as it is now.
    fn op(&self, network: usize, slot: usize, verb: Verb, kill: Option<Kill>) -> Op {
        let (invocation, config) = match verb {
            Verb::Gc => gc_call(&self.networks[network], &self.model, network),
            _ => {
                let attachment = self.model.slots[network][slot]
                    .as_ref()
                    .expect("a planned call names an attachment");
                attachment_call(&self.networks[network], attachment, verb)
            }
        };
        Op {
            network,
            slot,
            verb,
            invocation,
            stdin: serde_json::to_vec(&config).unwrap_or_default(),
            kill,
            repeat: false,
        }
    }

    /// Runs every op at once, each on a thread of its own.
    fn run_all(&self, ops: &[Op]) -> Vec<Outcome> {
        let host = self.lab.host();
        let dir = self.lab.dir();
        thread::scope(|scope| {
            let handles: Vec<_> = ops
                .iter()
                .map(|op| {
                    let binary = plugin_path(self.networks[op.network].plugin());
                    scope.spawn(move || {
                        runner::run(Some(host), dir, &binary, &op.invocation, &op.stdin, op.kill)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a call thread panicked"))
                .collect()
        })
    }

    /// Updates the model with one call's outcome; true if it was a DEL to run again (it
    /// was killed, or is to be repeated).
    fn apply(&mut self, op: &Op, outcome: &Outcome) -> bool {
        self.stats.calls[Verb::ALL.iter().position(|v| *v == op.verb).unwrap_or(0)] += 1;
        if outcome.was_killed() {
            self.stats.sigkills += 1;
            self.stats.passed += 1;
            // A killed ADD stays without a result: the cleanup DELs it. A killed DEL is
            // retried there too.
            return op.verb == Verb::Del;
        }
        if !outcome.succeeded() {
            self.violation(op, "failed", outcome);
            return false;
        }
        self.stats.passed += 1;
        match op.verb {
            Verb::Add => {
                if let Some(attachment) = self.model.slots[op.network][op.slot].as_mut() {
                    attachment.result = outcome.json();
                }
            }
            Verb::Del if op.repeat => return true,
            Verb::Del => self.forget(op.network, op.slot),
            Verb::Check | Verb::Gc => {}
        }
        false
    }

    /// DELs (without kills) every attachment whose ADD did not complete and every killed
    /// or repeated DEL: a runtime does exactly this, and DEL must then succeed.
    fn cleanup(&mut self, mut retry: Vec<(usize, usize)>) {
        for (network, slots) in self.model.slots.iter().enumerate() {
            for (slot, attachment) in slots.iter().enumerate() {
                if attachment.as_ref().is_some_and(|a| a.result.is_none()) {
                    retry.push((network, slot));
                }
            }
        }
        retry.sort_unstable();
        retry.dedup();
        let ops: Vec<Op> = retry
            .into_iter()
            .map(|(network, slot)| self.op(network, slot, Verb::Del, None))
            .collect();
        let outcomes = self.run_all(&ops);
        for (op, outcome) in ops.iter().zip(&outcomes) {
            self.apply(op, outcome);
        }
    }

    /// Drops a DELeted attachment, after checking that DEL left nothing in its netns, also
    /// after a killed ADD (a plugin must create nothing there that DEL cannot find).
    fn forget(&mut self, network: usize, slot: usize) {
        let Some(attachment) = self.model.slots[network][slot].take() else {
            return;
        };
        let Some(netns) = &attachment.netns else {
            return;
        };
        let links: Vec<String> = netns
            .ip_json(&["link", "show"])
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_owned))
            .filter(|name| name != "lo")
            .collect();
        if !links.is_empty() {
            self.violations.push(format!(
                "{} {}: links left in its netns after DEL: {links:?}",
                self.networks[network].name, attachment.id
            ));
        }
    }

    /// Deletes the netns of a random live attachment under it, as a crashed or
    /// hastily-removed container does; the attachment stays for a later DEL.
    fn vanish_one(&mut self) {
        let candidates: Vec<(usize, usize)> = (0..self.networks.len())
            .flat_map(|n| (0..self.model.slots[n].len()).map(move |s| (n, s)))
            .filter(|&(n, s)| {
                self.model.slots[n][s]
                    .as_ref()
                    .is_some_and(Attachment::checkable)
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (network, slot) = candidates[self.rng.below(candidates.len())];
        let Some(attachment) = self.model.slots[network][slot].as_mut() else {
            return;
        };
        drop(attachment.netns.take());
        attachment.unset_netns_when_gone = self.rng.chance(50);
        self.stats.vanished_netns += 1;
        if let Kind::Bridge { bridge, .. } = self.networks[network].kind {
            if let Some(veth) = attachment.host_veth(bridge) {
                let id = attachment.id.clone();
                self.wait_for_link_gone(&veth, &id);
            }
        }
    }

    /// The kernel removes the host end of a veth whose netns died in its netns clean-up
    /// work, asynchronously: wait for it (up to 10 s), so the next check sees the result.
    fn wait_for_link_gone(&mut self, ifname: &str, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.lab.host().link(ifname).is_some() {
            if Instant::now() > deadline {
                self.violations.push(format!(
                    "{id}: host veth {ifname} still there 10 s after its netns was deleted"
                ));
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node reboots: every container netns is gone and the runtime knows no
    /// attachment, so it runs one GC per network with an empty valid-attachment list.
    /// The invariants checked afterwards (against an empty model) say the node is clean.
    pub fn reboot_and_gc(&mut self) {
        for slots in &mut self.model.slots {
            for attachment in slots.iter_mut().flatten() {
                drop(attachment.netns.take());
            }
        }
        let veths: Vec<(String, String)> = self
            .networks
            .iter()
            .enumerate()
            .filter_map(|(n, network)| match network.kind {
                Kind::Bridge { bridge, .. } => Some((n, bridge)),
                _ => None,
            })
            .flat_map(|(n, bridge)| {
                self.model
                    .of(n)
                    .filter_map(|a| Some((a.host_veth(bridge)?, a.id.clone())))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (veth, id) in veths {
            self.wait_for_link_gone(&veth, &id);
        }
        self.model = Model::new(self.networks.len(), self.model.slots[0].len());
        let ops: Vec<Op> = (0..self.networks.len())
            .map(|network| self.op(network, 0, Verb::Gc, None))
            .collect();
        let outcomes = self.run_all(&ops);
        for (op, outcome) in ops.iter().zip(&outcomes) {
            self.apply(op, outcome);
        }
    }

    fn violation(&mut self, op: &Op, what: &str, outcome: &Outcome) {
        let network = &self.networks[op.network];
        let id = match op.verb {
            Verb::Gc => "(network)".to_owned(),
            _ => self.model.slots[op.network][op.slot]
                .as_ref()
                .map_or_else(|| "?".to_owned(), |a| a.id.clone()),
        };
        self.violations.push(format!(
            "{} {} {id}: {what}: {}",
            network.name,
            op.verb.as_str(),
            outcome.describe()
        ));
    }
}

/// ADD, CHECK or DEL of one attachment, with `prevResult` when the ADD's result is known.
fn attachment_call(network: &Network, attachment: &Attachment, verb: Verb) -> (Invocation, Value) {
    let mut invocation = Invocation::new(verb.as_str())
        .container_id(&attachment.id)
        .netns_path(&attachment.netns_path)
        .ifname(IFNAME);
    if attachment.netns.is_none() && attachment.unset_netns_when_gone {
        invocation = invocation.no_netns();
    }
    let mut config = network.config.clone();
    if verb != Verb::Add {
        if let (Some(result), Some(object)) = (&attachment.result, config.as_object_mut()) {
            object.insert("prevResult".to_owned(), result.clone());
        }
    }
    (invocation, config)
}

/// GC of `network` keeping every attachment the model has for it.
fn gc_call(network: &Network, model: &Model, index: usize) -> (Invocation, Value) {
    let valid: Vec<Value> = model
        .of(index)
        .map(|a| json!({"containerID": a.id, "ifname": IFNAME}))
        .collect();
    let mut config = network.config.clone();
    if let Some(object) = config.as_object_mut() {
        object.insert("cni.dev/valid-attachments".to_owned(), Value::Array(valid));
    }
    (Invocation::gc(), config)
}
