//! Results in every version (0.1.0 ... 1.1.0) and their conversions, as a plugin meets
//! them in `prevResult` and a delegate's output.
//!
//! Input: one selector byte (the version the JSON is read as: byte % 7, in the order of
//! `Version::ALL`), then the JSON.
//! Properties: a refused result is a valid error object; whatever we print in a version
//! we read back in that version and print identically; converting a result up to a newer
//! version and back down gives what it was (spec "Version conversion"); the printed text
//! is the same document as the value (for documents without non-integer numbers: see
//! `has_float`).
#![no_main]

use cni::{CniResult, Version};
use cni_fuzz::{assert_valid_error, has_float};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    let version = Version::ALL[usize::from(selector) % Version::ALL.len()];
    let Ok(value) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    // Typed fields are integers: a float can only sit in a key we pass through unread.
    let exact = !has_float(&value);
    let parsed = CniResult::parse(&value, version);
    let as_prev = CniResult::from_prev_result(&value, version);
    let result = match (parsed, as_prev) {
        (Ok(result), _) => result,
        (Err(err), prev) => {
            assert_valid_error(&err);
            if let Err(err) = prev {
                assert_valid_error(&err);
            }
            return;
        }
    };
    for target in Version::ALL {
        let printed = match result.to_value(target) {
            Ok(printed) => printed,
            Err(err) => {
                assert_valid_error(&err);
                assert!(
                    target.is_legacy_result(),
                    "only 0.1.0/0.2.0 refuse: {err:?}"
                );
                continue;
            }
        };
        let text = result.to_json_string(target).expect("to_value succeeded");
        if !exact {
            continue;
        }
        let reparsed_text: Value = serde_json::from_str(&text).expect("printed text is JSON");
        assert_eq!(reparsed_text, printed, "text and value differ in {target}");

        let reread = CniResult::parse(&printed, target)
            .unwrap_or_else(|e| panic!("cannot read back our own {target} result: {e:?}"));
        assert_eq!(
            reread.to_value(target).expect("printed once"),
            printed,
            "printing a re-read {target} result changed it"
        );
        if target > version {
            assert_up_and_down(&result, version, target);
        }
    }
});

/// `result` as printed in `low`, converted up to `high` and read back, then printed in `low`
/// again: nothing is lost on the way.
fn assert_up_and_down(result: &CniResult, low: Version, high: Version) {
    let Ok(at_low) = result.to_value(low) else {
        return;
    };
    let normal = CniResult::parse(&at_low, low).expect("read back (checked above)");
    let up = normal
        .to_value(high)
        .unwrap_or_else(|e| panic!("{low} result cannot convert up to {high}: {e:?}"));
    let back = CniResult::parse(&up, high)
        .and_then(|r| r.to_value(low))
        .unwrap_or_else(|e| panic!("{high} result from {low} cannot convert back: {e:?}"));
    assert_eq!(back, at_low, "{low} -> {high} -> {low} changed the result");
}
