//! Transient object-store faults are retried with the caller's policy (issue 11, point 8): a
//! loopback proxy in front of a real S3-compatible server answers the first requests with
//! `503 Service Unavailable`, as a throttled or restarting S3 endpoint does.
//! One test in this binary: it points the process's `AWS_ENDPOINT` at the proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sourcegraph_backup_core::{ArtifactOptions, BackupOption, BackupRepository, OpenOptions};
use sourcegraph_backup_testkit::s3::{env_for, S3Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Answers 503 on the first `failures` connections, then forwards to `upstream`.
async fn flaky_proxy(upstream: SocketAddr, failures: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let fail = failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            tokio::spawn(async move {
                if fail {
                    let mut buf = [0u8; 4096];
                    let _ = client.read(&mut buf).await;
                    let _ = client
                        .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                }
                if let Ok(mut server) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    addr
}

async fn put_one(repo: &BackupRepository) -> Result<(), sourcegraph_backup_core::CoreError> {
    let backup = repo.start_backup(BackupOption::ConfigOnly);
    let mut w = backup
        .artifact("config", "site.json", ArtifactOptions::plain("application/json"))
        .await?;
    w.write(Bytes::from_static(b"{}")).await?;
    w.finish().await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_with_the_callers_policy() {
    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("retry").await.unwrap();
    let failures = Arc::new(AtomicUsize::new(0));
    let proxy = flaky_proxy(s3.addr(), failures.clone()).await;
    for (key, value) in env_for(&format!("http://{proxy}")) {
        std::env::set_var(key, value);
    }
    let backoff = object_store::BackoffConfig {
        init_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        base: 2.0,
    };

    // No retries: the first 503 fails the write, and says so.
    failures.store(3, Ordering::SeqCst);
    let none = OpenOptions::default().retry(object_store::RetryConfig {
        backoff: backoff.clone(),
        max_retries: 0,
        retry_timeout: Duration::from_secs(5),
    });
    let err = put_one(&BackupRepository::open_with("s3://retry/none", &none).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("503"), "{err}");

    // Retries: three 503s in a row are ridden out.
    failures.store(3, Ordering::SeqCst);
    let some = OpenOptions::default().retry(object_store::RetryConfig {
        backoff,
        max_retries: 5,
        retry_timeout: Duration::from_secs(30),
    });
    put_one(&BackupRepository::open_with("s3://retry/some", &some).unwrap())
        .await
        .unwrap();
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "every failure was met and retried"
    );
}
