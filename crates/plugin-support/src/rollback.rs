//! The ADD undo stack: each step that changes something registers how to undo it; if ADD
//! returns early with an error, the undos run newest first. Undo failures are logged, not
//! returned: the caller reports the error that made ADD fail.

/// One registered undo: what it undoes (for logs) and how.
type Undo = (&'static str, Box<dyn FnOnce() -> cni::Result<()>>);

/// Undo actions of one ADD, run in reverse order on drop unless [`Rollback::commit`]ted.
#[derive(Default)]
pub struct Rollback {
    undos: Vec<Undo>,
}

impl Rollback {
    /// An empty stack.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers how to undo the step just done; `what` names it in logs.
    pub fn push(&mut self, what: &'static str, undo: impl FnOnce() -> cni::Result<()> + 'static) {
        self.undos.push((what, Box::new(undo)));
    }

    /// ADD succeeded: keep everything.
    pub fn commit(mut self) {
        self.undos.clear();
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        while let Some((what, undo)) = self.undos.pop() {
            log::info!("ADD failed: undoing {what}");
            if let Err(err) = undo() {
                log::warn!(
                    "undoing {what} failed: {err} ({})",
                    err.details().unwrap_or("")
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rollback;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn recording(
        log: &Rc<RefCell<Vec<&'static str>>>,
        what: &'static str,
    ) -> impl FnOnce() -> cni::Result<()> + 'static {
        let log = Rc::clone(log);
        move || {
            log.borrow_mut().push(what);
            Ok(())
        }
    }

    #[test]
    fn a_dropped_rollback_undoes_newest_first_and_keeps_going_after_a_failed_undo() {
        let log = Rc::new(RefCell::new(Vec::new()));
        {
            let mut rollback = Rollback::new();
            rollback.push("first", recording(&log, "first"));
            rollback.push("failing", || Err(cni::Error::internal("boom")));
            rollback.push("second", recording(&log, "second"));
        }
        assert_eq!(*log.borrow(), ["second", "first"]);
    }

    #[test]
    fn a_committed_rollback_undoes_nothing() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut rollback = Rollback::new();
        rollback.push("first", recording(&log, "first"));
        rollback.commit();
        assert!(log.borrow().is_empty());
    }
}
