//! Fault points for the black-box tests (the `fail` crate, configured by the `FAILPOINTS`
//! variable). They are compiled in only with the `failpoints` feature, which the tests crate
//! turns on; in every other build [`fault`] is `None` and costs nothing.
//!
//! | point | value | effect |
//! |---|---|---|
//! | `rebuild::pause_lease_ms` | ms | the pause lease's length |
//! | `rebuild::stop_renewing` | — | the rebuild stops renewing its leases (a stalled process) |
//! | `rebuild::before_swap_ms` | ms | the rebuild sleeps before its swap |
//! | `projector::crash_after_commit` | a projection | the process aborts after that projection's batch committed, before its cache refresh |

/// The point's value: `None` unless it is set to `return` (`Some("")`) or `return(value)`.
pub(crate) fn fault(name: &str) -> Option<String> {
    fail::fail_point!(name, |arg| Some(arg.unwrap_or_default()));
    let _ = name;
    None
}
