//! The broker's command line, run as a real process (`sluice-test-broker` = `sluice::cli_main`):
//! a server.properties file as first argument plus `--override key=value` (override wins), a bad
//! value stops startup with a non-zero exit and a message naming the key, and SIGTERM shuts
//! down cleanly (exit 0) with the data readable after the next start.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::Offset;
use sluice_tests::*;

const BIN: &str = env!("CARGO_BIN_EXE_sluice-test-broker");

fn run_expect_failure(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .arg("--override")
        .arg(format!("log.dirs={}", data.display()))
        .args(["--override", "metrics.listener=127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn broker");
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("broker with {args:?} kept running; it must refuse to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{args:?}: exit status must be non-zero, got {}", out.status);
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn bad_config_values_stop_startup_naming_the_key() {
    for (key, value) in [
        ("num.partitions", "abc"),
        ("node.id", "not-a-number"),
        ("message.max.bytes", "-5"),
        ("compression.type", "brotli"),
    ] {
        let kv = format!("{key}={value}");
        let out = run_expect_failure(&["--override", &kv]);
        check!("--override {kv}: non-zero exit, output names {key}");
        assert!(out.contains(key), "error output for {kv} does not name the key:\n{out}");
    }
}

#[tokio::test]
async fn properties_file_overrides_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let props = dir.path().join("server.properties");
    let port = free_port();
    std::fs::write(
        &props,
        format!(
            "# test config\nlisteners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={}\nnum.partitions=4\nnode.id=3\n",
            data.display()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("broker.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(BIN)
        .arg(&props)
        .args(["--override", "node.id=5", "--override", "metrics.listener=127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn");
    let broker = ExternalBroker { child, port, log_path: log_path.clone() };
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker not listening; log:\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let bootstrap = broker.bootstrap();
    let topic = topic_name("props");
    let p = producer(&bootstrap, &[]);
    check!("num.partitions=4 from the file applies to auto-created topics");
    assert_eq!(produce_ok(&p, &topic, &[TestRecord::value("v").to_partition(3)]).await, vec![(3, 0)]);
    assert_eq!(partition_count(&bootstrap, &topic), 4);
    check!("--override node.id=5 wins over node.id=3 in the file");
    let c = consumer(&bootstrap, &[]);
    let md = rdkafka::consumer::Consumer::fetch_metadata(&c, None, WAIT).unwrap();
    assert_eq!(md.brokers().iter().map(|b| b.id()).collect::<Vec<_>>(), vec![5]);
    drop((p, c));

    check!("SIGTERM: exit status 0");
    let status = broker.terminate();
    assert!(
        status.success(),
        "exit status {status} after SIGTERM; log:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );

    check!("restart with the same file: the record is there");
    let broker = ExternalBroker::start(BIN, &data, &[]);
    let got = consume_exactly(&broker.bootstrap(), &topic, &[0, 1, 2, 3], Offset::Beginning, 1);
    assert_eq!((got[0].partition, got[0].offset, got[0].value_str()), (3, 0, "v".to_string()));
}
