//! Vault/OpenBao Transit and AWS KMS as sops master keys, interoperating
//! with the real sops CLIs in both directions (OpenBao and moto as the key
//! services).

use std::path::Path;
use std::process::Command;

use crate::support::moto::{Moto, REGION};
use crate::support::openbao::OpenBao;
use crate::support::tools;

const PLAIN: &str = "db:\n    user: app\n    password: master-key-planted-91\n";

fn sealgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealgate"))
}

/// Runs `cmd` with `env`, asserting success; returns stdout as text.
fn ok(cmd: &mut Command, env: &[(&str, String)], home: &Path) -> String {
    cmd.env("HOME", home)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    String::from_utf8(tools::run_ok(cmd, None)).unwrap()
}

fn round_trips(flag: &str, recipient: &str, env: &[(&str, String)], key_kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("app.yaml");
    std::fs::write(&plain, PLAIN).unwrap();

    // sops (newest) encrypts, sealgate decrypts.
    let by_sops = ok(
        Command::new(tools::sops_go())
            .args(["encrypt", flag, recipient])
            .arg(&plain),
        env,
        dir.path(),
    );
    assert!(by_sops.contains(&format!("{key_kind}:")), "{by_sops}");
    assert!(!by_sops.contains("master-key-planted-91"));
    let f1 = dir.path().join("by-sops.yaml");
    std::fs::write(&f1, &by_sops).unwrap();
    let out = ok(sealgate().arg("decrypt").arg(&f1), env, dir.path());
    assert_eq!(out, PLAIN);

    // sealgate encrypts, sops (3.11 wheel) decrypts.
    let by_us = ok(
        sealgate().args(["encrypt", flag, recipient]).arg(&plain),
        env,
        dir.path(),
    );
    assert!(by_us.contains(&format!("{key_kind}:")), "{by_us}");
    let f2 = dir.path().join("by-sealgate.yaml");
    std::fs::write(&f2, &by_us).unwrap();
    let out = ok(
        Command::new(tools::sops_pypi()).arg("decrypt").arg(&f2),
        env,
        dir.path(),
    );
    assert_eq!(out, PLAIN);
    // And sealgate reads its own file back.
    assert_eq!(
        ok(sealgate().arg("decrypt").arg(&f2), env, dir.path()),
        PLAIN
    );
}

#[test]
fn vault_transit_keys_interoperate_with_sops() {
    let bao = OpenBao::start();
    bao.cli(&["secrets", "enable", "transit"]);
    bao.cli(&["write", "-f", "transit/keys/sops"]);
    let uri = format!("{}/v1/transit/keys/sops", bao.addr());
    let env = [
        ("VAULT_ADDR", bao.addr()),
        ("VAULT_TOKEN", bao.root_token().to_owned()),
    ];
    round_trips("--hc-vault-transit", &uri, &env, "hc_vault");

    // .sops.yaml creation rules name Transit keys too, and `rotate` re-wraps
    // a new data key for the same Transit key; sops still opens the result.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".sops.yaml"),
        format!("creation_rules:\n  - hc_vault_transit_uri: {uri}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("app.yaml"), PLAIN).unwrap();
    let enc = ok(
        sealgate()
            .current_dir(dir.path())
            .args(["encrypt", "app.yaml"]),
        &env,
        dir.path(),
    );
    let f = dir.path().join("app.enc.yaml");
    std::fs::write(&f, &enc).unwrap();
    ok(sealgate().args(["rotate", "-i"]).arg(&f), &env, dir.path());
    let rotated = std::fs::read_to_string(&f).unwrap();
    assert_ne!(rotated, enc);
    assert!(rotated.contains("hc_vault:"));
    assert_eq!(
        ok(
            Command::new(tools::sops_go()).arg("decrypt").arg(&f),
            &env,
            dir.path()
        ),
        PLAIN
    );

    // Without a token no key opens: exit 2, and no plaintext on stdout.
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("x.yaml");
    std::fs::write(&plain, PLAIN).unwrap();
    let enc = ok(
        sealgate()
            .args(["encrypt", "--hc-vault-transit", &uri])
            .arg(&plain),
        &env,
        dir.path(),
    );
    let f = dir.path().join("x.enc.yaml");
    std::fs::write(&f, enc).unwrap();
    let out = sealgate()
        .arg("decrypt")
        .arg(&f)
        .env("HOME", dir.path())
        .env_remove("VAULT_TOKEN")
        .env_remove("BAO_TOKEN")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn aws_kms_keys_interoperate_with_sops() {
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let arn = rt.block_on(async {
        let conf = moto.sdk_config().await;
        aws_sdk_kms::Client::new(&conf)
            .create_key()
            .description("sealgate sops test")
            .send()
            .await
            .unwrap()
            .key_metadata()
            .and_then(|m| m.arn())
            .unwrap()
            .to_owned()
    });
    let env = [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ];
    round_trips("--kms", &arn, &env, "kms");
}
