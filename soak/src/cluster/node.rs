//! One simulated node: its name, its attachments as its runtime knows them, and the calls
//! it makes, one at a time as a node's runtime would, through the CNI contract only.

use std::time::{Duration, Instant};

use cni::error::code::IPAM_EXHAUSTED;
use cni_conformance::{Invocation, with_prev};
use serde_json::{Value, json};

use super::Run;
use crate::rng::Rng;
use crate::runner::{self, Kill, Outcome};

/// The interface name of every attachment (one per container).
pub const IFNAME: &str = "eth0";
/// CNI code 11, "try again later": what an ADD may fail with while etcd has no quorum.
const TRY_AGAIN_LATER: u64 = 11;

/// An attachment whose ADD succeeded and that was not deleted since.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub container_id: String,
    /// The bare address (no prefix length) the ADD returned.
    pub address: String,
    pub result: Value,
}

/// What one ADD ended as.
enum Added {
    Ok,
    Exhausted,
    /// Killed, timed out or refused: it may or may not hold a reservation.
    Unknown,
}

pub struct Node {
    pub name: String,
    pub live: Vec<Attachment>,
    /// Container IDs whose ADD or DEL was killed or failed and not cleaned up since: each
    /// may hold a reservation (all or nothing); GC must clear them.
    pub uncertain: Vec<String>,
    /// Container IDs whose ADD was interrupted and whose clean-up DEL then succeeded. The
    /// ADD's transaction may still have been on its way to etcd and commit after that DEL
    /// found nothing: such a reservation is GC's to clear.
    pub cleaned: Vec<String>,
    next_container: u64,
    rng: Rng,
}

impl Node {
    pub fn new(index: usize, seed: u64) -> Node {
        Node {
            name: format!("node-{index:02}"),
            live: Vec::new(),
            uncertain: Vec::new(),
            cleaned: Vec::new(),
            next_container: 0,
            rng: Rng::new(seed ^ ((index as u64 + 1) << 48)),
        }
    }

    /// ADDs new containers until the pool is exhausted (one coded exhaustion error).
    pub fn fill(&mut self, run: &Run) {
        while !run.stopped() {
            if let Added::Exhausted = self.add(run) {
                return;
            }
        }
    }

    /// Random ADD / DEL / CHECK calls until the run's budget of operations is used up.
    pub fn churn(&mut self, run: &Run) {
        while run.take_op() {
            let roll = self.rng.below(100);
            if self.live.is_empty() || roll < 45 {
                self.add(run);
            } else if roll < 90 {
                let i = self.rng.below(self.live.len());
                let attachment = self.live.swap_remove(i);
                self.del(run, attachment, true);
            } else {
                let i = self.rng.below(self.live.len());
                let attachment = self.live[i].clone();
                self.check(run, &attachment);
            }
        }
    }

    /// A SIGKILL part-way through, in a fault run: one call in ten.
    fn maybe_kill(&mut self, run: &Run) -> Option<Kill> {
        (run.faults && self.rng.chance(10)).then(|| Kill {
            after: Duration::from_millis(self.rng.below(40) as u64),
            plugin_only: false,
        })
    }

    /// One plugin call; SIGKILLed part-way through now and then in a fault run when
    /// `may_kill`.
    fn call(
        &mut self,
        run: &Run,
        invocation: &Invocation,
        conf: &Value,
        may_kill: bool,
    ) -> (Outcome, Duration) {
        let kill = if may_kill { self.maybe_kill(run) } else { None };
        let stdin = serde_json::to_vec(conf).expect("a JSON value serializes");
        run.count_call();
        let started = Instant::now();
        let outcome = runner::run(None, run.workdir, &run.binary, invocation, &stdin, kill);
        let container = invocation
            .environment(&run.binary)
            .remove("CNI_CONTAINERID");
        run.journal(format!(
            "{} {} {}: {}",
            self.name,
            invocation.command(),
            container.unwrap_or_default().to_string_lossy(),
            summary(&outcome)
        ));
        (outcome, started.elapsed())
    }

    fn add(&mut self, run: &Run) -> Added {
        let container_id = format!("{}-c{:05}", self.name, self.next_container);
        self.next_container += 1;
        let invocation = attachment_call("ADD", &container_id);
        let (outcome, took) = self.call(run, &invocation, &run.conf(&self.name), true);
        let code = error_code(&outcome);
        if outcome.succeeded() {
            match self.accept_add(run, container_id.clone(), &outcome) {
                Ok(()) => {
                    run.stats.lock().unwrap().add_ok(took);
                    return Added::Ok;
                }
                Err(violation) => run.violation(violation),
            }
        } else if code == Some(u64::from(IPAM_EXHAUSTED)) {
            run.stats.lock().unwrap().exhausted += 1;
            // Nothing may be left behind; a fault run's runtime DELs anyway (below).
            if !run.faults {
                return Added::Exhausted;
            }
        } else if interrupted(run, &outcome) {
            run.stats
                .lock()
                .unwrap()
                .interrupted("ADD", &outcome, run.member_down());
        } else {
            run.violation(format!(
                "{}: ADD {container_id} failed: {}",
                self.name,
                outcome.describe()
            ));
        }
        // The runtime's clean-up after a failed ADD: a DEL, which must leave nothing.
        self.clean_up(run, container_id);
        if code == Some(u64::from(IPAM_EXHAUSTED)) {
            Added::Exhausted
        } else {
            Added::Unknown
        }
    }

    /// Records a successful ADD's address, or says why the result is wrong.
    fn accept_add(&mut self, run: &Run, container_id: String, out: &Outcome) -> Result<(), String> {
        let result = out.json().ok_or_else(|| {
            format!(
                "{}: ADD {container_id}: not JSON: {}",
                self.name, out.stdout
            )
        })?;
        let ips = result["ips"].as_array().cloned().unwrap_or_default();
        let [ip] = ips.as_slice() else {
            return Err(format!(
                "{}: ADD {container_id}: want one IP: {result}",
                self.name
            ));
        };
        let cidr = ip["address"].as_str().unwrap_or_default();
        let address = cidr.split('/').next().unwrap_or_default().to_owned();
        if !run.pool.usable(&address) || !cidr.ends_with(&format!("/{}", run.pool.prefix_len)) {
            return Err(format!(
                "{}: ADD {container_id}: {cidr} is not a usable address of the pool",
                self.name
            ));
        }
        if let Some(holder) = run.hold(&address, &container_id) {
            return Err(format!(
                "DUPLICATE: {}: ADD {container_id} got {address}, which {holder} holds",
                self.name
            ));
        }
        self.live.push(Attachment {
            container_id,
            address,
            result,
        });
        Ok(())
    }

    /// DELs a live attachment. Its address is released in the ledger first: from the
    /// moment the DEL starts, another node may rightly be given it.
    fn del(&mut self, run: &Run, attachment: Attachment, may_kill: bool) {
        run.release(&attachment.address);
        let invocation = attachment_call("DEL", &attachment.container_id);
        let conf = with_prev(&run.conf(&self.name), &attachment.result);
        let (outcome, _) = self.call(run, &invocation, &conf, may_kill);
        self.after_del(run, attachment.container_id, &outcome);
    }

    /// A DEL for an attachment whose state is unknown (a failed or killed ADD).
    fn clean_up(&mut self, run: &Run, container_id: String) {
        let invocation = attachment_call("DEL", &container_id);
        let (outcome, _) = self.call(run, &invocation, &run.conf(&self.name), true);
        if outcome.succeeded() {
            self.cleaned.push(container_id.clone());
        }
        self.after_del(run, container_id, &outcome);
    }

    fn after_del(&mut self, run: &Run, container_id: String, outcome: &Outcome) {
        if outcome.succeeded() {
            run.stats.lock().unwrap().del_ok += 1;
            return;
        }
        if !interrupted(run, outcome) {
            run.violation(format!(
                "{}: DEL {container_id} failed: {}",
                self.name,
                outcome.describe()
            ));
        }
        run.stats
            .lock()
            .unwrap()
            .interrupted("DEL", outcome, run.member_down());
        self.uncertain.push(container_id);
    }

    fn check(&mut self, run: &Run, attachment: &Attachment) {
        let invocation = attachment_call("CHECK", &attachment.container_id);
        let conf = with_prev(&run.conf(&self.name), &attachment.result);
        let (outcome, _) = self.call(run, &invocation, &conf, true);
        if outcome.succeeded() {
            run.stats.lock().unwrap().check_ok += 1;
        } else if interrupted(run, &outcome) {
            run.stats
                .lock()
                .unwrap()
                .interrupted("CHECK", &outcome, run.member_down());
        } else {
            run.violation(format!(
                "{}: CHECK {} ({}) failed: {}",
                self.name,
                attachment.container_id,
                attachment.address,
                outcome.describe()
            ));
        }
    }

    /// GC with this node's live attachments as `cni.dev/valid-attachments`; never killed.
    pub fn gc(&mut self, run: &Run) {
        let valid: Vec<Value> = self
            .live
            .iter()
            .map(|a| json!({"containerID": a.container_id, "ifname": IFNAME}))
            .collect();
        let mut conf = run.conf(&self.name);
        conf["cni.dev/valid-attachments"] = Value::Array(valid);
        let (outcome, _) = self.call(run, &Invocation::gc(), &conf, false);
        if !outcome.succeeded() {
            run.violation(format!("{}: GC failed: {}", self.name, outcome.describe()));
        }
        self.uncertain.clear();
        self.cleaned.clear();
    }

    /// DELs every live attachment (never killed), at the end of the run.
    pub fn release_all(&mut self, run: &Run) {
        for attachment in std::mem::take(&mut self.live) {
            self.del(run, attachment, false);
        }
    }
}

/// An attachment verb for `container_id`. The netns path is never opened by an IPAM
/// plugin; it only has to be given.
fn attachment_call(verb: &str, container_id: &str) -> Invocation {
    Invocation::new(verb)
        .container_id(container_id)
        .netns_path(format!("/run/netns/{container_id}"))
        .ifname(IFNAME)
}

/// A call that failed because of a fault the run injected: our SIGKILL, or (fault run) etcd
/// without a quorum.
fn interrupted(run: &Run, outcome: &Outcome) -> bool {
    outcome.was_killed() || (run.faults && error_code(outcome) == Some(TRY_AGAIN_LATER))
}

/// One line on how a call ended, for the journal.
fn summary(outcome: &Outcome) -> String {
    if outcome.was_killed() {
        return "SIGKILLed".to_owned();
    }
    let json = outcome.json().unwrap_or_default();
    match outcome.exit {
        Some(0) => format!("ok {}", json["ips"]),
        _ => format!("failed ({:?}): {}", outcome.exit, json["msg"]),
    }
}

fn error_code(outcome: &Outcome) -> Option<u64> {
    outcome.json().and_then(|v| v["code"].as_u64())
}
