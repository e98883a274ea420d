//! The run's real services: the arguments that put a test server on them (`TITOK_TEST_*`, set by
//! scripts/test), each test in its own database, key namespace, topics and bucket prefix; whether
//! this run has them, and the guard of the tests that need them; a handle on the run's broker. The
//! private instances a test starts itself (Redis, tansu, MariaDB, a Redis Cluster) are the kit's
//! (`titok_kit::services`, re-exported).

/// Arguments that put a test server on the real services named by `TITOK_TEST_MYSQL_URL`,
/// `TITOK_TEST_REDIS_URL`, `TITOK_TEST_KAFKA_BROKERS` and `TITOK_TEST_BLOB_STORE` (set by
/// `scripts/test`), each test in its own database, Redis key namespace, Kafka topics and bucket
/// prefix. Empty when none is set (embedded default).
pub(crate) fn service_args(data_dir: &std::path::Path) -> Vec<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (mysql, redis, kafka) = (
        var("TITOK_TEST_MYSQL_URL"),
        var("TITOK_TEST_REDIS_URL"),
        var("TITOK_TEST_KAFKA_BROKERS"),
    );
    let blob_store = var("TITOK_TEST_BLOB_STORE");
    if mysql.is_none() && redis.is_none() && kafka.is_none() && blob_store.is_none() {
        return Vec::new();
    }
    let unique = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_APP.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let secret = format!("test-secret-{unique}-0123456789abcdef0123456789");
    std::fs::write(data_dir.join("token-secret"), &secret).expect("write secret");
    let mut args = vec![
        "--namespace".to_owned(),
        unique.clone(),
        "--token-secret".to_owned(),
        secret,
    ];
    if let Some(url) = mysql {
        args.extend([
            "--mysql-url".to_owned(),
            format!("{}/{unique}", url.trim_end_matches('/')),
        ]);
        for replica in var("TITOK_TEST_MYSQL_READ_URLS")
            .iter()
            .flat_map(|urls| urls.split(','))
        {
            args.extend([
                "--mysql-read-url".to_owned(),
                format!("{}/{unique}", replica.trim_end_matches('/')),
            ]);
        }
    }
    if let Some(url) = redis {
        args.extend(["--redis-url".to_owned(), url]);
    }
    // Videos on S3 (scripts/test: SeaweedFS), each test under its own prefix of the bucket.
    if let Some(store) = blob_store {
        args.extend([
            "--blob-store".to_owned(),
            format!("{}/{unique}", store.trim_end_matches('/')),
        ]);
    }
    if let Some(brokers) = kafka {
        args.extend([
            "--kafka-brokers".to_owned(),
            brokers,
            "--kafka-session-timeout-ms".to_owned(),
            "6000".to_owned(),
        ]);
    }
    args
}

static NEXT_APP: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether this run drives the real services (scripts/test's second pass).
pub fn on_real_services() -> bool {
    std::env::var("TITOK_TEST_MYSQL_URL").is_ok_and(|v| !v.is_empty())
}

/// Guard of a real-service test (marked `#[ignore = "needs …"]`; scripts/test runs it in its
/// real-service pass with `--include-ignored`): run without the services, it fails instead of passing vacuously.
#[macro_export]
macro_rules! needs_real_services {
    () => {
        assert!(
            $crate::on_real_services(),
            "this test needs Kafka/MySQL/Redis (TITOK_TEST_*); scripts/test runs it on real services"
        );
    };
}

/// A handle on this run's Kafka-API broker (`TITOK_TEST_KAFKA_BROKERS`) for the topics of
/// `namespace`, so a test can append to or read the log directly.
pub async fn kafka_log(namespace: &str) -> titok_adapters::kafka_log::KafkaLog {
    titok_adapters::kafka_log::KafkaLog::connect(titok_adapters::kafka_log::KafkaSettings {
        brokers: std::env::var("TITOK_TEST_KAFKA_BROKERS").expect("TITOK_TEST_KAFKA_BROKERS"),
        namespace: namespace.to_owned(),
        partitions: 4,
        replication: 1,
        session_timeout_ms: 6000,
        fetch_wait_ms: 10,
        idempotence: true,
        linger_ms: 5,
    })
    .await
    .expect("connect to the test broker")
}
