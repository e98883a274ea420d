//! Every black-box suite in one test binary: one link of the server and its dependencies instead of
//! one per file (each debug link is ~200 MB; fourteen of them filled the CI disk). Run one suite with
//! `cargo test -p titok-tests --test suite rules::`.

mod api_fuzz;
mod bad_input;
mod balanced;
mod bench;
mod browser;
mod chaos;
mod consistency;
mod crash;
mod event_versions;
mod faults;
mod hosts;
mod log_gaps;
mod media;
mod operability;
mod outages;
mod peers;
mod poison;
mod rebuild;
mod retries;
mod rules;
mod scale_out;
mod scaled;
mod scenarios;
mod secrets_in_logs;
mod security;
mod stream;
mod tap;
