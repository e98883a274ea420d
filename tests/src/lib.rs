//! # titok-tests
//!
//! Black-box tests: every test starts the real server binary on port 0 with its own data dir,
//! drives the Douyin HTTP API with reqwest, and asserts on the JSON replies. Run them with
//! `cargo test -p titok-tests` (or the README's test command, which runs everything).
//!
//! [`TestApp`] is the `spawn_app()` helper with typed request helpers.
//!
//! With `TITOK_TEST_TOPOLOGY=scaled` (scripts/test's third pass) a [`TestApp`] is the scaled-out
//! topology instead of one `titok serve`: two command APIs (node ids 1 and 2), two query APIs and
//! two projector instances sharing the services and the data dir (uploads), behind haproxy
//! ([`Balancer`]) routing the write endpoints to the command APIs and everything else to the query
//! APIs, round robin — so consecutive requests of a test land on different instances.
//!
//! One concern per file; what the bench uses too (launching the binary, ports, haproxy and the
//! topologies, private services, Prometheus text, polling) is the test kit's (`tests/kit`,
//! `titok-kit`), re-exported here so that the suites' `use titok_tests::*` sees every name:
//!
//! | file | what |
//! |---|---|
//! | `app.rs` | [`TestApp`]: start, stop, kill, restart, readiness, its `titok` commands |
//! | `api.rs` | the API helpers, [`User`], envelope assertions, signed tokens |
//! | `launch.rs` | the binaries under test and the topology's processes ([`run_titok`], [`run_bench`]) |
//! | `cluster.rs` | [`Cluster`]: split roles a test starts itself |
//! | `inject.rs` | [`TestApp::inject`]: records appended to the log as a foreign producer would |
//! | `fault_proxy.rs` | [`FaultyProxy`]: slow, stalled and reset connections to a service |
//! | `services.rs` | the run's real services: arguments, [`on_real_services`], [`kafka_log`] |
//! | `sse.rs` | [`EventStream`]: a client of `/douyin/stream/` (server-sent events) |

mod api;
mod app;
mod cluster;
mod fault_proxy;
mod inject;
mod launch;
mod services;
mod sse;

pub use api::{assert_ok, assert_refused, ids, list, sign, User, SAMPLE_MP4};
pub use app::{spawn_app, TestApp};
pub use cluster::Cluster;
pub use fault_proxy::{Fault, FaultyProxy};
pub use launch::{run_bench, run_titok, run_titok_bare};
pub use services::{kafka_log, on_real_services};
pub use sse::{EventStream, SseEvent};
pub use titok_kit::{
    eventually, free_port, host_of, metric, scaled_topology, Balancer, PrivateService,
    RedisCluster, Topology, WRITE_PATHS,
};
