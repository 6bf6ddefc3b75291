//! The admission webhook's review on arbitrary bodies: must answer (an
//! AdmissionReview with the request's uid) or return a typed error, never
//! panic, and never admit without a uid to answer to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealgate::webhook::{Outcome, Policy, review};

fuzz_target!(|data: &[u8]| {
    let policy = Policy::default();
    if let Ok(r) = review(data, &policy) {
        assert!(r.response["response"]["uid"].is_string());
        if r.response["response"]["allowed"] == true {
            assert!(matches!(r.outcome, Outcome::Allowed(_)));
        }
    }
});
