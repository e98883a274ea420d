//! The topologies a run starts the server as (`TITOK_TEST_TOPOLOGY`): one `titok serve`, the
//! scaled-out one (two of each role on one host, behind haproxy), or one of each role on hosts of
//! its own (network namespaces made by scripts/hosts.sh) — their roles in start order, and which
//! host each instance runs on. The bench's topology scenario starts [`each_role`] of them.

/// The roles of a split deployment in start order: the projectors first (they join their consumer
/// groups while the APIs start), then the command APIs and the query APIs.
pub const ROLES: [&str; 3] = ["projectors", "command-api", "query-api"];

/// `n` instances of each role, in [`ROLES`] order.
pub fn each_role(n: usize) -> [(&'static str, usize); 3] {
    ROLES.map(|role| (role, n))
}

/// The processes of the scaled topology: role and count.
const SCALED: [(&str, usize); 3] = [("projectors", 2), ("command-api", 2), ("query-api", 2)];

/// The processes of the hosts topology: one of each role, each on a host of its own, and a second
/// query API (so that the balancer has somewhere to go when one query host is cut off).
const HOSTS: [(&str, usize); 3] = [("projectors", 1), ("command-api", 1), ("query-api", 2)];

/// The host (network namespace, address) of instance `i` (1-based) of a role in the hosts
/// topology, as `scripts/hosts.sh` makes them; anything else is the client host, where the test
/// process and the balancer run.
pub fn host_of(role: &str, i: usize) -> (&'static str, &'static str) {
    match (role, i) {
        ("command-api", 1) => ("titok-command", "10.77.0.11"),
        ("query-api", 1) => ("titok-query", "10.77.0.12"),
        ("query-api", 2) => ("titok-query2", "10.77.0.14"),
        ("projectors", 1) => ("titok-projector", "10.77.0.13"),
        _ => ("titok-client", "10.77.0.10"),
    }
}

/// How this run starts every server of the suites (`TITOK_TEST_TOPOLOGY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One `titok serve` (the default).
    Single,
    /// Two of each role behind haproxy, on one host (scripts/test pass 3).
    Scaled,
    /// One of each role, each on a host of its own with its own data dir, behind haproxy on the
    /// client host (scripts/test pass 4; scripts/hosts.sh makes the hosts).
    Hosts,
}

impl Topology {
    pub fn of_this_run() -> Topology {
        match std::env::var("TITOK_TEST_TOPOLOGY").as_deref() {
            Ok("scaled") => Topology::Scaled,
            Ok("hosts") => Topology::Hosts,
            _ => Topology::Single,
        }
    }

    /// The roles it starts and how many of each, in start order (empty: one `serve`).
    pub fn roles(self) -> &'static [(&'static str, usize)] {
        match self {
            Topology::Single => &[],
            Topology::Scaled => &SCALED,
            Topology::Hosts => &HOSTS,
        }
    }
}

/// Whether this run starts every server as several processes behind a balancer (the scaled or
/// the hosts topology).
pub fn scaled_topology() -> bool {
    Topology::of_this_run() != Topology::Single
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scaled_topology_is_two_of_each_role_in_start_order() {
        assert_eq!(Topology::Scaled.roles(), &each_role(2));
        assert!(Topology::Single.roles().is_empty());
    }
}
