//! Start-up: open the adapters from the configuration, check the projection versions, spawn the
//! projections, serve what the role runs, and stop gracefully.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use titok_events::Topic;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::sample::{seed_sample, write_static_images};
use crate::{progress, readiness, Backends, Config, Role, DEMO_PAGE};

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    /// The ports the projections use (the bench loads and rebuilds through them).
    pub deps: titok_projectors::ProjectorDeps,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    /// The `--admin-listen` server, if any.
    admin: Option<JoinHandle<std::io::Result<()>>>,
    projectors: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stop accepting, finish in-flight requests, let projections finish their batch.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.server.await??;
        if let Some(admin) = self.admin {
            admin.await??;
        }
        for p in self.projectors {
            p.await?;
        }
        Ok(())
    }

    /// Run until SIGINT/SIGTERM, then stop gracefully.
    pub async fn until_signalled(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.stop().await
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Open the adapters, start what `role` runs (projections, command and/or query endpoints) and
/// the HTTP server.
pub async fn start(role: Role, config: Config) -> anyhow::Result<Running> {
    let data = &config.data_dir;
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create data dir {}", data.display()))?;
    titok_web::telemetry::prometheus();
    let backends = Backends::open(&config, role).await?;
    if role.runs_projectors() {
        refuse_log_retention(backends.log.as_ref(), &config)?;
    }
    titok_projectors::version_check::prepare(
        &backends.projector_deps(&config),
        config.stale_views.into(),
        role.runs_projectors(),
        &progress::for_rebuild,
    )
    .await?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut projectors = Vec::new();
    if role.runs_projectors() {
        let deps = backends.projector_deps(&config);
        projectors = titok_projectors::spawn_all(deps.clone(), shutdown_rx.clone()).await?;
        if config.orphan_sweep_secs > 0 {
            projectors.push(tokio::spawn(titok_projectors::sweep::run(
                deps,
                backends.blobs.clone(),
                Duration::from_secs(config.orphan_age_secs),
                Duration::from_secs(config.orphan_sweep_secs),
                shutdown_rx.clone(),
            )));
        }
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let media_url = match &config.media_url {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => format!("{}/static", public_url.trim_end_matches('/')),
    };
    let mut query = backends.query_state(&config, &media_url);
    if role.runs_queries() && config.feed_index_videos > 0 {
        let index = titok_views::reads::FeedIndex::start(
            &backends.store.read,
            backends.tail_log.clone(),
            titok_projectors::catalog::view_of(Topic::Videos).projection,
            &format!("{}.feed-index.{}", config.namespace, uuid::Uuid::now_v7()),
            config.feed_index_videos,
            shutdown_rx.clone(),
        )
        .await?;
        tracing::info!(videos = index.len(), "feed index loaded");
        query.feed = Some(index);
    }
    if role.runs_queries() && config.streams > 0 {
        // Started at the first stream: a process nobody streams from tails nothing.
        query.stream = Some(titok_query_api::stream::Hub::new(
            titok_query_api::stream::StreamLimits {
                max_streams: config.streams,
                per_user: config.streams_per_user,
                buffer: config.stream_buffer,
                replay: config.stream_replay,
            },
            backends.log.clone(),
            backends.positions.clone(),
            query.reader.clone(),
            format!("{}.stream.{}", config.namespace, uuid::Uuid::now_v7()),
            shutdown_rx.clone(),
        ));
    }
    let pools = [
        ("read", backends.store.read.clone()),
        ("write", backends.store.write.clone()),
    ];
    let metrics = move || {
        let pools = pools.clone();
        async move {
            for (name, pool) in &pools {
                titok_adapters::store::record_pool(name, pool);
            }
            titok_web::telemetry::prometheus().render()
        }
    };
    // `/readyz` and `/metrics`: on the public listener, or on `--admin-listen` alone.
    let admin = Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(readiness::readyz).with_state(readiness::Readiness {
                log: backends.log.clone(),
                store: backends.store.clone(),
                positions: backends.positions.clone(),
                max_lag: config.ready_max_lag,
                halts: backends.halts.clone(),
                cache: Default::default(),
            }),
        )
        .route("/metrics", axum::routing::get(metrics));
    let mut app = Router::new();
    let mut admin_server = None;
    match config.admin_listen {
        Some(at) => {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on --admin-listen {at}"))?;
            tracing::info!(addr = %listener.local_addr()?, "admin endpoints (/readyz, /metrics) on their own listener");
            let admin = admin.fallback(titok_web::http::unknown_path);
            let mut stop = shutdown_rx.clone();
            admin_server = Some(tokio::spawn(async move {
                axum::serve(listener, admin)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await
            }));
            app = app.route("/healthz", axum::routing::get(|| async { "ok" }));
        }
        None => app = app.merge(admin),
    }
    if role.runs_commands() {
        let command = backends.command_state(&config, query.clone());
        titok_command_api::recover_pending_registrations(&command).await?;
        tokio::spawn(titok_command_api::idempotency::prune_keys(
            command.keys.clone(),
            shutdown_rx.clone(),
        ));
        if !config.no_sample {
            seed_sample(&command, data).await?;
        }
        app = app.merge(titok_command_api::router(command));
    }
    if config.bench_ceiling {
        app = app.route(
            "/bench/noop",
            axum::routing::get(noop)
                .post(noop)
                .with_state(query.auth.clone()),
        );
    }
    if role.runs_queries() {
        write_static_images(backends.blobs.as_ref()).await?;
        app = app.route(
            "/",
            axum::routing::get(|| async { axum::response::Html(DEMO_PAGE) }),
        );
        app = app.merge(titok_query_api::router(query));
    }
    let mut documented = Vec::new();
    if role.runs_commands() {
        documented.extend(titok_command_api::endpoints());
    }
    if role.runs_queries() {
        documented.extend(titok_query_api::endpoints());
    }
    let openapi = std::sync::Arc::new(titok_web::openapi::document(&documented));
    app = app.route(
        "/openapi.json",
        axum::routing::get(move || async move { axum::Json((*openapi).clone()) }),
    );
    if role.runs_commands() || role.runs_queries() {
        app = app.nest(
            "/static",
            titok_query_api::media::router(
                backends.blobs.clone(),
                config
                    .media_presign_secs
                    .map(std::time::Duration::from_secs),
            ),
        );
    }
    let app = app
        .fallback(titok_web::http::unknown_path)
        .method_not_allowed_fallback(titok_web::http::unsupported_method)
        .layer(axum::middleware::from_fn(titok_web::telemetry::observe));
    let mut stop = shutdown_rx;
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
    });
    tracing::info!(?role, %addr, public_url, data_dir = %data.display(), "titok-plus running");
    Ok(Running {
        addr,
        deps: backends.projector_deps(&config),
        shutdown,
        server,
        admin: admin_server,
        projectors,
    })
}

/// Projections and rebuilds fold the whole log: refuse to run them on topics that delete events
/// (unless the operator said `--allow-log-retention`).
pub fn refuse_log_retention(
    log: &dyn titok_ports::log::EventLog,
    config: &Config,
) -> anyhow::Result<()> {
    if let titok_ports::log::Retention::Deletes(what) = log.retention() {
        if config.allow_log_retention {
            tracing::warn!(what, "the event log deletes events (--allow-log-retention): views rebuilt from it will lack what it deleted");
        } else {
            anyhow::bail!("refusing to run projections: the event log deletes events: {what}");
        }
    }
    Ok(())
}

/// The bench's ceiling: everything a request costs before a handler does its work (routing,
/// request id, span, metrics, parameter parsing, token check), and nothing else.
async fn noop(
    axum::extract::State(auth): axum::extract::State<titok_web::auth::Authenticator>,
    params: titok_web::http::Params,
) -> titok_web::http::Reply<titok_web::http::Empty> {
    titok_web::http::Reply::from(
        async {
            auth.require(&params).await?;
            Ok(titok_web::http::Empty {})
        }
        .await,
    )
}
