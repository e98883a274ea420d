//! # titok-kit
//!
//! The test kit that the black-box suites' harness (`titok-tests`) and the bench (`titok-bench`)
//! share, one implementation each:
//!
//! | module | what |
//! |---|---|
//! | [`launch`] | start a process of the `titok` binary and read the address it listens on |
//! | [`ports`] | [`free_port`], and the one [`wait_for_port`] |
//! | [`balancer`] | haproxy in front of the split roles: its configuration and process |
//! | [`topology`] | the topologies (one `serve`, scaled, hosts), their roles and hosts |
//! | [`services`] | private Redis, tansu, MariaDB and Redis Cluster instances, started by scripts/services.sh's functions |
//! | [`metrics`] | the one Prometheus text parser |
//! | [`poll`] | [`eventually`], the one poll loop |

pub mod balancer;
pub mod launch;
pub mod metrics;
pub mod poll;
pub mod ports;
pub mod services;
pub mod topology;

pub use balancer::{Balancer, ADMIN_PATHS, ADMIN_REFUSAL, WRITE_PATHS};
pub use metrics::metric;
pub use poll::eventually;
pub use ports::{free_port, wait_for_port};
pub use services::{PrivateService, RedisCluster};
pub use topology::{host_of, scaled_topology, Topology};
