//! The command line's contract: every flag on either side of a role, the tools' own flags,
//! and the flag table of docs/configuration.md against the CLI.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::CommandFactory;

use super::*;
use crate::config::{HEADINGS, TOOL_FLAGS};

const ROLES: [&str; 4] = ["serve", "command-api", "query-api", "projectors"];

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("titok").chain(args.iter().copied()))
}

/// A command line that gives every [`Config`] flag a valid value.
fn every_flag() -> Vec<String> {
    let mut args = Vec::new();
    for arg in Cli::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        args.push(format!("--{long}"));
        if !arg.get_action().takes_values() {
            continue;
        }
        let value = match long {
            "listen" | "admin-listen" => "127.0.0.1:0",
            "trusted-proxy" => "10.0.0.0/8",
            "stale-views" => "refuse",
            "kafka-idempotence" => "false",
            "media-presign-secs" => "60",
            "node-id" | "orphan-age-secs" => "1",
            "data-dir" | "namespace" | "token-secret" | "public-url" | "kafka-brokers"
            | "mysql-url" | "mysql-read-url" | "redis-url" | "blob-store" | "media-url"
            | "ffmpeg" => "x",
            _ => "7",
        };
        args.push(value.to_owned());
    }
    args
}

#[test]
fn a_serving_role_takes_every_flag_before_or_after_its_name() {
    let args = every_flag();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    parse(&args).expect("every flag with no role");
    for role in ROLES {
        let before: Vec<&str> = args.iter().copied().chain([role]).collect();
        let after: Vec<&str> = [role].into_iter().chain(args.iter().copied()).collect();
        for line in [before, after] {
            let cli = parse(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(cli.config.data_dir, PathBuf::from("x"), "{line:?}");
            assert!(cli.config.no_sample && !cli.config.kafka_idempotence);
            assert_eq!(cli.config.stale_views, StaleViewsArg::Refuse);
            assert_eq!(cli.config.trusted_proxies.len(), 1);
        }
    }
}

#[test]
fn flags_on_both_sides_of_a_role_merge_and_the_later_one_wins() {
    // As the test harness starts a role: `titok --listen A --data-dir D ROLE <its flags>`.
    let cli = parse(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        "/d",
        "--namespace",
        "before",
        "query-api",
        "--namespace",
        "after",
        "--no-sample",
        "--consistency-timeout-ms",
        "15000",
    ])
    .expect("parses");
    assert!(matches!(cli.command, Some(Command::QueryApi)));
    let config = cli.config;
    assert_eq!(config.listen.to_string(), "127.0.0.1:0");
    assert_eq!(config.data_dir, PathBuf::from("/d"));
    assert_eq!(config.namespace, "after");
    assert!(config.no_sample);
    assert_eq!(config.consistency_timeout_ms, 15000);
    assert_eq!(config.max_uploads, 16, "defaults stay");
}

#[test]
fn a_tool_takes_the_servers_service_flags_but_not_the_serving_ones() {
    // As the test harness runs a tool: `titok TOOL … --data-dir D <the server's arguments>`.
    let harness = [
        "--data-dir",
        "/d",
        "--no-sample",
        "--namespace",
        "n",
        "--token-secret",
        "s",
        "--mysql-url",
        "mysql://m/db",
        "--mysql-read-url",
        "mysql://r/db",
        "--redis-url",
        "redis://r",
        "--blob-store",
        "s3://b/p",
        "--kafka-brokers",
        "k:9092",
        "--kafka-session-timeout-ms",
        "6000",
    ];
    for tool in [
        &["tap", "--from-beginning"][..],
        &["rebuild", "all"],
        &["parked", "list"],
    ] {
        let line: Vec<&str> = tool.iter().chain(&harness).copied().collect();
        let cli = parse(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(cli.config.data_dir, PathBuf::from("/d"));
        assert_eq!(cli.config.mysql_url.as_deref(), Some("mysql://m/db"));
        assert_eq!(cli.config.kafka_session_timeout_ms, 6000);
        // Before the tool's name, every flag is still accepted (and ignored).
        let line: Vec<&str> = ["--listen", "127.0.0.1:1", "--mysql-url", "mysql://m/db"]
            .iter()
            .chain(tool)
            .copied()
            .collect();
        let cli = parse(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(cli.config.mysql_url.as_deref(), Some("mysql://m/db"));
        // After it, a flag no tool uses is refused.
        let line: Vec<&str> = tool
            .iter()
            .chain(&["--max-uploads", "3"])
            .copied()
            .collect();
        let err = parse(&line).expect_err("a serving flag after a tool");
        assert_eq!(err.kind(), ErrorKind::UnknownArgument, "{line:?}: {err}");
    }
    // The log's settings reach the tools that read the log.
    let cli = parse(&[
        "rebuild",
        "all",
        "--partitions",
        "8",
        "--allow-log-retention",
    ])
    .expect("parses");
    assert_eq!(cli.config.partitions, 8);
    assert!(cli.config.allow_log_retention);
}

#[test]
fn every_tool_flag_names_a_config_flag() {
    let config = <Config as clap::Args>::augment_args(clap::Command::new("config"));
    let ids: Vec<&str> = config
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .collect();
    let tools: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for (tool, flags) in TOOL_FLAGS {
        assert!(tools.iter().any(|t| t == tool), "no subcommand {tool}");
        for flag in *flags {
            assert!(ids.contains(flag), "{tool}: no Config field {flag}");
        }
    }
}

/// Every visible [`Config`] flag is under exactly one help heading, and every id of the heading
/// table names a flag.
#[test]
fn every_config_flag_has_one_heading() {
    let config = <Config as clap::Args>::augment_args(clap::Command::new("config"));
    let visible: Vec<&str> = config
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .map(|a| a.get_id().as_str())
        .collect();
    for id in &visible {
        let headings = HEADINGS.iter().filter(|(_, ids)| ids.contains(id)).count();
        assert_eq!(headings, 1, "--{id} is under {headings} headings");
    }
    for (heading, ids) in HEADINGS {
        for id in *ids {
            assert!(
                visible.contains(id),
                "{heading}: no visible Config flag {id}"
            );
        }
    }
}

/// Every long flag with its env var, across the command and its subcommands: the root's (the
/// whole [`Config`]) and any other that has a variable. A tool's own flags (`tap --topic`,
/// `rebuild --pause-within`, …) have none and are documented with the tool; hidden flags
/// (`--bench-ceiling`) are not documented.
fn cli_flags() -> BTreeMap<String, Option<String>> {
    fn walk(
        cmd: &clap::Command,
        root: bool,
        flags: &mut BTreeMap<String, Option<String>>,
        clashes: &mut Vec<String>,
    ) {
        for arg in cmd.get_arguments() {
            let (Some(long), false) = (arg.get_long(), arg.is_hide_set()) else {
                continue;
            };
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            if long == "help" || long == "version" || !(root || env.is_some()) {
                continue;
            }
            let long = format!("--{long}");
            match flags.get(&long) {
                Some(seen) if *seen != env => clashes.push(format!(
                    "{long} has env {env:?} in `{}` but {seen:?} elsewhere",
                    cmd.get_name()
                )),
                _ => {
                    flags.insert(long, env);
                }
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, false, flags, clashes);
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    let (mut flags, mut clashes) = (BTreeMap::new(), Vec::new());
    walk(&cmd, true, &mut flags, &mut clashes);
    assert!(clashes.is_empty(), "{clashes:#?}");
    flags
}

/// The rows `| `--flag` | `ENV_VAR` | default | meaning |` of a Markdown table (a flag cell
/// may say `(repeatable)` after the flag, an env cell `(comma-separated)`; rows with no flag,
/// like `| — | `TITOK_SQLITE_CACHE_KIB` | …`, are variables read elsewhere).
fn table_flags(markdown: &str) -> BTreeMap<String, Option<String>> {
    let first_code = |cell: &str| cell.split('`').nth(1).map(str::to_owned);
    markdown
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().strip_prefix('|')?.split('|').collect();
            let flag = first_code(cells.first()?).filter(|f| f.starts_with("--"))?;
            let env = cells.get(1).and_then(|cell| first_code(cell));
            Some((flag, env))
        })
        .collect()
}

#[test]
fn the_configuration_table_lists_exactly_the_flags_and_their_variables() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
    let markdown = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (cli, table) = (cli_flags(), table_flags(&markdown));
    let mut problems = Vec::new();
    for (flag, env) in &cli {
        match table.get(flag) {
            None => problems.push(format!("{flag} ({env:?}) is missing from the table")),
            Some(documented) if documented != env => problems.push(format!(
                "{flag}: the table says env {documented:?}, the CLI reads {env:?}"
            )),
            Some(_) => {}
        }
    }
    for flag in table.keys().filter(|f| !cli.contains_key(*f)) {
        problems.push(format!("{flag} is in the table but is no flag of titok"));
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md and `titok --help` disagree:\n{}",
        problems.join("\n")
    );
}
